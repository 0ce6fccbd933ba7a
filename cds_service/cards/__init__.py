"""Cards built from findings: the only place where card text, links and extensions are written."""
