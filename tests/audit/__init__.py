"""Audit trail tests: the store on both back ends, the report, the real server."""
