"""Audit trail: cards shown and what clinicians did with them."""
