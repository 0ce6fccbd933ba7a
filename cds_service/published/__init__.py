"""What the service publishes without authentication: its FHIR artifacts and readable regimen pages."""
