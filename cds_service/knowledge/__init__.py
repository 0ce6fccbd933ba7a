"""The trial's knowledge, loaded from the FHIR artifacts in plan_definitions/."""
