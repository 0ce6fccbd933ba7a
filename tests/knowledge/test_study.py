"""The study: NCT number, arms and their aliases, the numbered criteria, the protocol's regimens."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(("text", "arm"), [
    ("dexamethasone-free arm", "B"), ("Dexamethasone-Free Arm", "B"), ("B", "B"), ("arm b", "B"), ("Arm_B", "B"),
    ("dexamethasone-free", "B"), ("  dexamethasone   free arm ", "B"), ("dexamethasone arm", "A"), ("A", "A"),
    ("Arm A", "A"), ("C", None), ("dexamethasone", None), ("", None), (None, None),
])
def test_arm_names_and_aliases(knowledge, text, arm):
    found = knowledge.study.arm_named(text)
    assert (found.key if found else None) == arm


def test_arms_as_published(knowledge):
    a, b = knowledge.study.arm("A"), knowledge.study.arm("B")
    assert (a.name, a.arm_type) == ("dexamethasone arm", "active-comparator")
    assert (b.name, b.arm_type) == ("dexamethasone-free arm", "experimental")
    assert set(b.regimens) == {"ICARIA", "IKEMA"}
    assert knowledge.regimen_for_canonical(b.regimens["IKEMA"]).arm == "B"


def test_study_identity(knowledge):
    study = knowledge.study
    assert study.nct_id == "NCT06561854"
    assert study.is_this_study("nct06561854") and study.is_this_study(" NCT06561854 ")
    assert not study.is_this_study("NCT02513394") and not study.is_this_study(None)
    assert study.registry_url == "https://clinicaltrials.gov/study/NCT06561854"
    assert study.canonical.endswith("/ResearchStudy/nct06561854|1.0.0")


def test_criteria_numbered_as_in_the_protocol_with_their_thresholds(knowledge):
    ids = [c.id for c in knowledge.study.criteria if "-" not in c.id]
    assert ids == [f"I{i}" for i in range(1, 8)] + [f"E{i}" for i in range(1, 17)]
    assert knowledge.study.criterion("I1").low == 18
    assert (knowledge.study.criterion("I3").low, knowledge.study.criterion("I3").high) == (1, 3)
    assert knowledge.study.criterion("I3-line").low == 2
    assert (knowledge.study.criterion("I5").low, knowledge.study.criterion("I5").high) == (0, 2)
    assert knowledge.study.criterion("E6").low == 3 and knowledge.study.criterion("E6").exclude
    assert not knowledge.study.criterion("I1").exclude


def test_rule_and_override_codes_come_from_the_codesystem(knowledge):
    assert set(knowledge.rule_codes) == {"dex-after-cycle-2", "dex-extends-past-cycle-2", "dex-dose-mismatch",
                                         "cannot-verify", "trial-status", "eligibility"}
    assert [r.code for r in knowledge.override_reasons] == ["premedication-isatuximab", "non-myeloma-indication",
                                                            "approved-deviation"]
    assert knowledge.rule.endswith("/PlanDefinition/dex-free-arm-b-rule|1.0.0")
