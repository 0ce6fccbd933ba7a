"""Bulk eligibility screening (`cds-service screen`): FHIR exports in, one row per myeloma patient out.

Design, so that memory does not grow with the number of patients:

1. Pass 1 (`sources`, `relevance`, `store`) streams the input — a Bundle file, a folder of JSON resources
   or Bundles, or Bulk FHIR NDJSON files (one resource type per file, several files per type allowed, `.gz`
   too) — one resource at a time. Each resource is assigned to its patient (its own id for a Patient; its
   `subject` / `patient` / `individual` reference otherwise). Only resources the criteria can read are kept
   (codes in the value sets of knowledge/reads.py, every Patient and ResearchSubject), cut down to the
   elements the criteria read, and written to a temporary SQLite file with the patient as key. Medication and
   ResearchStudy resources, which belong to no patient, go to a second table keyed by reference.
2. Pass 2 (`run`) reads the SQLite file back in patient order through its index: one patient's resources
   at a time are parsed with the service's R4B path (`fhir.parse.parse_resource`; `intern` reuses complex
   elements already validated, such as a drug's code) into a PatientRecord, assessed
   (`rules.eligibility.assess`) and written as one row (`output`), then dropped. Conditions are parsed
   first: a patient without multiple myeloma gets no row and nothing else of theirs is parsed.

The two passes are `passes.per_patient_pass`, shared with trial monitoring (`cds_service/monitor/`): each
command gives its own selection (what it keeps, cut down how) and what it does with one patient's resources.
Memory is one patient's resources, bounded caches (value-set matches, validated elements, shared resources)
and SQLite's page cache (2 MB); the temporary file is deleted at the end. The disk it takes is about the size
of the resources kept (cut down), in the system's temporary folder.
One limit: a single Bundle *file* is one JSON document and is read whole — large exports belong in NDJSON.
Resources that do not validate as FHIR R4 are skipped and counted (by type only: no patient data is logged).
An NDJSON line or Bundle entry that is not a readable resource (not JSON, not an object, a resourceType that
is not a string, nesting past 100 levels), or a resource or patient whose reading fails on a value of an
unexpected JSON type, is skipped, counted and named by position on stderr (`Condition.000.ndjson line 7:
not JSON`, `export.json entry[3]: …`, the first ten of them); the screening of the others goes on.
"""
