"""The value sets the rules read, by record part: one list for the criteria, the raw selection and screening.

It lives with the knowledge, below the rules, so that selecting raw resources before validation
(knowledge/relevance.py, screen/relevance.py) and the criteria (rules/facts.py) name the same sets: a
criterion that reads a new value set adds it here, and selection keeps what it reads.
"""

from __future__ import annotations

CONDITION_SETS = (
    "multiple-myeloma", "multiple-myeloma-relapse", "other-malignancy", "meningeal-involvement",
    "cns-secondary-neoplasm", "plasma-cell-leukaemia", "waldenstrom", "poems", "amyloidosis",
    "amyloidosis-type-not-stated", "copd", "cardiac-disease", "hepatitis-b", "hepatitis-c",
    "viral-hepatitis-carrier", "hiv", "lactation", "pregnancy", "hct-unspecified",
)
OBSERVATION_SETS = ("ecog", "response-observation", "breastfeeding-status", "pregnancy-status")
PROCEDURE_SETS = ("allogeneic-hct", "hct-unspecified")
# Every anti-myeloma drug: the lines of therapy read them all.
MEDICATION_SET = "myeloma-therapy"
