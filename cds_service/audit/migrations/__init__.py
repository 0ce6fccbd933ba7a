"""Alembic migrations of the audit store; applied at start by cds_service.audit.migrate."""
