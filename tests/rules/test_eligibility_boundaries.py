"""Each threshold of the eligibility criteria on its edge, both sides, as the protocol words it.

"≥18 years" (I1): 18 on the day of the assessment is adult. "Between 1 to 3 prior therapies" (I3): 3 is in,
4 is out; "2 or more cycles": 2 cycles count. "Within 3 years before the date of randomization" (E6): exactly
3 years before is within. ECOG (I5) within CDS_ECOG_WINDOW_DAYS (90): exactly 90 days old is recent enough.
The suite's today is 2026-11-24.
"""

from __future__ import annotations

import pytest

from tests.fixtures.eligibility.builders import condition, day, ecog, line, patient
from tests.rules.test_eligibility_criteria import NO_ECOG, NO_MEDICATION, base, evaluate, kind

THREE_YEARS_AGO, JUST_OVER = "2023-11-24", "2023-11-23"
EARLIER_LINES = [*line(("carfilzomib", "dexamethasone"), start_days_ago=1500, cycles=4, prefix="k"),
                 *line(("pomalidomide", "dexamethasone"), start_days_ago=1000, cycles=4, prefix="p")]
LATER_LINE = line(("daratumumab", "dexamethasone"), start_days_ago=250, cycles=4, prefix="d")


@pytest.mark.parametrize(("birth", "status"), [
    ("2008-11-24", "met"),       # 18th birthday today
    ("2008-11-25", "not-met"),   # 18 tomorrow
    ("2008-11-23", "met"),
    ("2008-02-29", "met"),       # a leap-day birth: 18 since 2026-02-28 or 03-01 either way
])
def test_i1_eighteen_on_the_day(knowledge, birth, status):
    result = evaluate(knowledge, base(patient(birth=birth), drop=kind("Patient")), "I1")
    assert result.status == status, result.reason


@pytest.mark.parametrize(("extra", "status", "reason"), [
    (EARLIER_LINES, "met", "3 prior lines"),
    ([*EARLIER_LINES, *LATER_LINE], "not-met", "4 prior lines"),
])
def test_i3_three_lines_is_the_most(knowledge, extra, status, reason):
    result = evaluate(knowledge, base(*extra), "I3")
    assert result.status == status and reason in result.reason, result.reason


@pytest.mark.parametrize(("cycles", "status"), [(2, "met"), (1, "unknown")])
def test_i3_two_cycles_make_a_prior_therapy(knowledge, cycles, status):
    only = line(("bortezomib", "dexamethasone"), start_days_ago=400, cycles=cycles, prefix="vd")
    result = evaluate(knowledge, base(*only, drop=NO_MEDICATION), "I3")
    assert result.status == status, result.reason


@pytest.mark.parametrize(("ended", "status"), [(THREE_YEARS_AGO, "not-met"), (JUST_OVER, "met")])
def test_e6_ended_exactly_three_years_ago_is_within(knowledge, ended, status):
    cancer = condition("C50.911", rid="bc", clinical="resolved", onset="2020-01-10", abatement=ended)
    result = evaluate(knowledge, base(cancer), "E6")
    assert result.status == status, result.reason


@pytest.mark.parametrize(("recorded", "status"), [(THREE_YEARS_AGO, "not-met"), (JUST_OVER, "met")])
def test_e6_last_known_present_exactly_three_years_ago_is_within(knowledge, recorded, status):
    cancer = condition("C50.911", rid="bc", clinical=None, onset="2020-01-10", recorded=recorded)
    result = evaluate(knowledge, base(cancer), "E6")
    assert result.status == status, result.reason


@pytest.mark.parametrize(("age_days", "status"), [(90, "met"), (91, "unknown"), (0, "met")])
def test_i5_ecog_ninety_days_old_is_recent_enough(knowledge, age_days, status):
    result = evaluate(knowledge, base(ecog(1, rid="e", when=day(age_days)), drop=NO_ECOG), "I5")
    assert result.status == status, result.reason
