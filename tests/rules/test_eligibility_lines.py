"""Prior lines of therapy from the medication history (rules/lines.py): grouping, durations, what counts."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from cds_service.rules.criteria import i3_prior_lines
from cds_service.rules.facts import Facts, Options
from cds_service.rules.lines import therapy_history
from tests.fixtures.eligibility.builders import (
    ATC,
    SNOMED,
    TODAY,
    build_record,
    day,
    given,
    line,
    order,
    patient,
    procedure,
    statement,
)

OPTIONS = Options(ecog_window_days=90, zone=ZoneInfo("Europe/Paris"))


def history(knowledge, *resources):
    return therapy_history(Facts(build_record([patient(), *resources]), knowledge, TODAY, OPTIONS))


def summary(knowledge, *resources):
    found = history(knowledge, *resources)
    return found.lines_min, found.lines_max, [(r.label, r.kind) for r in found.regimens]


def weekly(drug, start, weeks, prefix):
    return [given(drug, rid=f"{prefix}-{n}", when=day(start - 7 * n)) for n in range(weeks)]


def test_drugs_started_within_a_cycle_form_one_regimen(knowledge):
    resources = [*weekly("bortezomib", 300, 16, "v"), order("lenalidomide", rid="r", start=day(290), end=day(190)),
                 order("dexamethasone", rid="d", start=day(300), end=day(190))]
    assert summary(knowledge, *resources) == (1, 1, [("bortezomib + lenalidomide + dexamethasone", "line")])


def test_a_drug_added_later_starts_a_new_regimen(knowledge):
    first = line(("lenalidomide", "dexamethasone"), start_days_ago=700, cycles=6, prefix="rd")
    added = line(("daratumumab", "lenalidomide", "dexamethasone"), start_days_ago=500, cycles=4, prefix="drd")
    lines_min, lines_max, regimens = summary(knowledge, *first, *added)
    assert (lines_min, lines_max) == (2, 2)
    assert [label for label, _ in regimens] == ["lenalidomide + dexamethasone",
                                                "daratumumab + lenalidomide + dexamethasone"]


def test_the_same_drugs_after_a_pause_may_be_a_new_line_or_not(knowledge):
    first = line(("bortezomib", "dexamethasone"), start_days_ago=900, cycles=6, prefix="a")
    again = line(("bortezomib", "dexamethasone"), start_days_ago=400, cycles=6, prefix="b")
    assert summary(knowledge, *first, *again)[:2] == (1, 2)
    reason = i3_prior_lines(Facts(build_record([patient(), *first, *again]), knowledge, TODAY, OPTIONS)).reason
    assert "resumed or retreatment" in reason


def test_maintenance_after_a_transplant_belongs_to_the_line_before(knowledge):
    induction = line(("bortezomib", "lenalidomide", "dexamethasone"), start_days_ago=900, cycles=4, prefix="vrd")
    transplant = procedure("234336002", SNOMED, rid="asct", when=day(700))
    maintenance = line(("lenalidomide",), start_days_ago=600, cycles=10, prefix="r")
    found = history(knowledge, *induction, transplant, *maintenance)
    assert (found.lines_min, found.lines_max) == (1, 1)
    assert "Procedure/asct" in found.regimens[0].references
    # Without the transplant the same history is ambiguous.
    assert summary(knowledge, *induction, *maintenance)[:2] == (1, 2)


def test_dexamethasone_alone_is_not_a_line(knowledge):
    found = history(knowledge, order("dexamethasone", rid="d", start=day(900), end=day(600)),
                    *line(("pomalidomide", "dexamethasone"), start_days_ago=300, cycles=3, prefix="pd"))
    assert (found.lines_min, found.lines_max) == (1, 1)
    assert "dexamethasone alone is not counted as a line" in found.notes


def test_local_dexamethasone_is_not_myeloma_therapy(knowledge):
    eye_drops = order("dexamethasone", rid="eye", start=day(300), end=day(100), route=(SNOMED, "54485002"))
    found = history(knowledge, eye_drops, order("lenalidomide", rid="r", start=day(290), end=day(100)))
    assert [e.reference for e in found.exposures] == ["MedicationRequest/r"]


def test_what_was_not_given_is_not_counted(knowledge):
    found = history(
        knowledge,
        order("carfilzomib", rid="cancelled", start=day(300), end=day(100), status="cancelled"),
        order("carfilzomib", rid="draft", start=day(300), end=day(100), status="draft"),
        order("carfilzomib", rid="proposal", start=day(300), end=day(100), intent="proposal"),
        given("carfilzomib", rid="not-done", when=day(200), status="not-done"),
        statement("carfilzomib", rid="not-taken", start=day(300), end=day(100), status="not-taken"),
        order("carfilzomib", rid="future", start=day(-10), end=day(-100), status="active"),
    )
    assert found.exposures == () and found.empty


def test_an_active_order_without_end_runs_until_today(knowledge):
    ongoing = order("lenalidomide", rid="r", start=day(100), status="active", authored_only=True)
    found = history(knowledge, ongoing)
    assert found.regimens[0].ongoing and found.regimens[0].days == 101 and found.lines_min == 1
    assert found.regimens[0].describe() == f"lenalidomide from {day(100)} (ongoing)"


def test_expected_supply_and_refills_give_the_end(knowledge):
    supplied = order("pomalidomide", rid="p", start=day(300), supply_days=28)
    supplied["dispenseRequest"]["numberOfRepeatsAllowed"] = 2  # 3 × 28 days
    found = history(knowledge, supplied)
    assert found.regimens[0].days == 84 and found.regimens[0].kind == "line"


def test_an_order_with_only_its_date_leaves_the_count_open(knowledge):
    found = history(knowledge, order("lenalidomide", rid="r", start=day(300), authored_only=True))
    assert (found.lines_min, found.lines_max) == (0, 1) and found.regimens[0].kind == "uncertain"


def test_undated_treatment_may_be_one_more_line(knowledge):
    found = history(knowledge, *line(("lenalidomide",), start_days_ago=400, cycles=3, prefix="r"),
                    statement("melphalan", rid="mel", start=None, text="melphalan 200 mg/m2"))
    assert (found.lines_min, found.lines_max) == (1, 2)
    assert "1 undated anti-myeloma order(s)" in found.notes


def test_drugs_are_recognised_by_reference_ingredient_and_brand(knowledge):
    contained = order(None, rid="contained", start=day(400), end=day(300), medication_reference="#pom")
    contained["contained"] = [{"resourceType": "Medication", "id": "pom", "ingredient": [
        {"itemCodeableConcept": {"coding": [{"system": ATC, "code": "L04AX06"}]}}]}]
    referenced = order(None, rid="referenced", start=day(250), end=day(150), medication_reference="Medication/k")
    carfilzomib = {"resourceType": "Medication", "id": "k", "code": {"text": "Kyprolis 60 mg vial"}}
    brand = statement(None, rid="brand", start=day(100), end=day(20), text="Revlimid 10 mg")
    found = history(knowledge, contained, referenced, carfilzomib, brand)
    assert [e.drug for e in found.exposures] == ["pomalidomide", "carfilzomib", "lenalidomide"]
    assert [e.reference for e in found.exposed_to(knowledge, "pomalidomide")] == ["MedicationRequest/contained"]


def test_the_derivation_is_stated_with_the_knowledge_numbers(knowledge):
    text = history(knowledge).derivation()
    assert "within 28 days of each other" in text and "2 cycles (56 days)" in text
