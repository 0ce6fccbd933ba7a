"""FHIR access: prefetch, reads from the EHR's FHIR server, caching, and R4B parsing into a PatientRecord."""
