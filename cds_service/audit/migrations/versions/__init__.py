"""Audit schema revisions, one file each, applied in order (Alembic skips this file)."""
