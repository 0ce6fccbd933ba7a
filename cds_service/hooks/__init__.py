"""The CDS Hooks 2.0.1 specification: request parsing, service discovery, card and response building."""
