"""Demo patients made by the project: FHIR R4 records, dated relative to the day they are served.

Decisions where the issue was silent:
- Every number comes from the Knowledge (cycle lengths, days of each drug, dose bands, arm names,
  regimen canonical URLs, the NCT number) and every code from the shipped ValueSets (the first concept
  of the set that says what is meant), so a protocol change moves the demo with it.
- Ids are stable and prefixed `dexfree-demo-`, so loading the Bundle into a server that holds other
  data (the CDS Hooks Sandbox's) touches nothing else, and loading it twice changes nothing (PUTs).
- The demo study is its own ResearchStudy (`dexfree-demo-study`, carrying the NCT identifier), not the
  published artifact's id: loading the demo never overwrites the published ResearchStudy. Each
  ResearchSubject names it by reference and by logical identifier, so the service recognises the study
  without having to read it (the discovery template searches ResearchSubject without `_include`).
- The trial patients' regimen and cycle 1 day 1 come from a CarePlan instantiating the regimen
  PlanDefinition, as the README's rules prefer; the "cycle cannot be verified" patient has no CarePlan
  and no isatuximab on record.
"""
