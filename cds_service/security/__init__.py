"""Who may call the service, what it may call, and how identities are kept out of logs."""
