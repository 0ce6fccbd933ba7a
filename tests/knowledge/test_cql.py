"""The eca-rule's CQL: it compiles with the reference translator, its committed ELM is current, and its ELM,
run by a CQL engine, agrees with the Python rules on every rule scenario of the suite.

The differential test takes the scenario tables of tests/rules/test_order_shapes.py (each row on both of
its days), the end-to-end rows of tests/rules/test_cycle_clock.py and tests/services/test_order_hooks.py,
renders each as the FHIR data a CDS engine retrieves (the hook's prefetch and the draft Bundle's other
resources, plus the published artifacts the CQL reads) and the draft orders as the `Draft Orders`
parameter, and runs all of them in one node process (cql/run.mjs: cql-execution and cql-exec-fhir). For each
scenario and each of the four rules, the orders the CQL's expression returns must be the orders the Python
rules give that rule a finding for. Scenarios outside what the CQL expresses are in OUTSIDE_CQL, each with its
reason; they must still disagree (an exclusion that has started to agree is stale and fails too).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cds_service.errors import ConfigError
from cds_service.fhir.assemble import assemble_record
from cds_service.hooks.request import parse_hook_request
from cds_service.knowledge.elm import SOURCE_TAG, checked_elm, elm_path, embed_sources, value_set_codes
from cds_service.rules.cycles import INFUSION_SLACK_DAYS
from cds_service.rules.dexamethasone import DOSE_TOLERANCE_MG, evaluate_orders
from tests.rules import test_cycle_clock, test_order_shapes
from tests.rules.scenario import call, care_plan
from tests.services import test_order_hooks

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "cql"
LOGIC = ROOT / "plan_definitions" / "logic"
CQL = LOGIC / "DexFreeRules.cql"
TODAY = "2026-11-24"

# The eca-rule's actions (PlanDefinition-dex-free-arm-b-rule) → the CQL expression listing the orders each
# rule fires for (the action's Boolean condition is `exists` of it).
RULE_ORDERS = {
    "dex-after-cycle-2": "Orders In A Cycle Without Dexamethasone",
    "dex-extends-past-cycle-2": "Orders Running Into A Cycle Without Dexamethasone",
    "dex-dose-mismatch": "Orders With A Dose Differing From The Regimen",
    "cannot-verify": "Orders That Cannot Be Verified",
}
DEBUG = ("Arm", "Cycle 1 Day 1", "On Study Treatment", "Stop Cycle", "Placed Orders")

WORDS = "route or product words in free text (the CQL reads coded routes and product codes only): it warns"
CONTAINED = ("a contained Medication: cql-exec-fhir 2.2.0 reads contained resources as FHIR.Resource (their id "
             "only), so the engine cannot read its code, ingredients or strength (the CQL says it cannot verify)")
RECONCILE = ("a CarePlan starting before the first isatuximab given: the service weighs which calendar the "
             "infusions fit, the CQL says it cannot verify")
DELAY = ("a delayed or early cycle 2 or 3 re-anchored on the isatuximab given: the CQL counts the plain calendar "
         "from cycle 1 day 1")
UNDATED = ("an enrolment without a date: the service takes the latest isatuximab course, the CQL takes cycle 1 "
           "day 1 from a CarePlan only (else it cannot verify)")
R5 = "an R5 element (actualComparisonGroup) that the R4 model does not have: the CQL finds no arm"
OUTSIDE_CQL: dict[str, str] = {
    "order shapes: drug contained Medication / C3D1": CONTAINED,
    "order shapes: drug contained Medication / C1D8": CONTAINED,
    "order shapes: drug ingredient only / C3D1": CONTAINED,
    "order shapes: drug ingredient only / C1D8": CONTAINED,
    "order hooks: medicationReference contained": CONTAINED,
    "order hooks: dose in tablets with contained strength": CONTAINED,
    "order shapes: local eye drops product / C3D1": WORDS,
    "order shapes: local collyre / C3D1": WORDS,
    "order shapes: local gouttes auriculaires / C3D1": WORDS,
    "order shapes: local crème / C3D1": WORDS,
    "order shapes: local nasal route words / C3D1": WORDS,
    "order hooks: eye drops never trigger": WORDS,
    "cycle clock: delayed cycle 2, order in the unclear week: cannot verify": DELAY,
    "cycle clock: delayed cycle 2, order in the unclear week: the card says the order's cycle is unclear": DELAY,
    "cycle clock: delayed cycle 2, order from cycle 2 ending in the unclear week: cannot verify, never silence": DELAY,
    "cycle clock: cycle 3 day 1 given two days early, premedication that day: warning": DELAY,
    "cycle clock: plan earlier than a late start, correct cycle 2 order: no card": RECONCILE,
    "cycle clock: no enrolment date, previous line two years earlier, correct cycle 1 order: no card": UNDATED,
    "order hooks: R5-style comparison group": R5,
}


def _node() -> str:
    node = shutil.which("node")
    if node is None or not (TOOLS / "node_modules" / "@cqframework" / "cql").is_dir():
        pytest.skip("node and cql/node_modules are needed (make test installs them)")
    return node


def _scenarios() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, shape, _, _ in test_order_shapes.ROWS:
        for label, day in (("C3D1", test_order_shapes.LATE), ("C1D8", test_order_shapes.RIGHT)):
            found.append((f"order shapes: {name} / {label}", test_order_shapes._body(shape, day)))
    for name, kwargs, _, _ in test_cycle_clock.E2E:
        found.append((f"cycle clock: {name}", call(**{"plans": (care_plan(),), **kwargs})))
    for name, kwargs, _ in test_order_hooks.SCENARIOS:
        found.append((f"order hooks: {name}", call(**kwargs)))
    return found


SCENARIOS = _scenarios()


def _python_findings(runtime, body: dict[str, Any]) -> dict[str, list[str]]:
    service = runtime.registry.get("dex-free-order-sign")
    request = parse_hook_request(body, service.hook, service.id)
    record = assemble_record(request, service.needs, wants=service.prefetch, keep=runtime.keep.get(service.id),
                             parse=runtime.parse_cache.parse)
    findings = evaluate_orders(record, runtime.knowledge, runtime.today(), ZoneInfo(runtime.config.timezone))
    return {rule: sorted({f.order_ref for f in findings if f.rule == rule}) for rule in RULE_ORDERS}


def _engine_input(body: dict[str, Any], artifacts: list[dict[str, Any]]) -> dict[str, Any]:
    """The scenario as a CDS engine sees it: one patient Bundle and the draft orders."""
    resources = [body["prefetch"]["patient"]]
    for value in body["prefetch"].values():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            resources += [e["resource"] for e in value.get("entry") or []]
    drafts = [e["resource"] for e in body["context"]["draftOrders"].get("entry") or []]
    orders = [r for r in drafts if r.get("resourceType") == "MedicationRequest"]
    resources += [r for r in drafts if r.get("resourceType") != "MedicationRequest"]
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": r} for r in (*resources, *artifacts)]}
    return {"bundle": bundle, "draftOrders": orders, "evaluationDate": TODAY}


@pytest.fixture(scope="session")
def cql_answers(knowledge, tmp_path_factory) -> dict[str, dict[str, Any]]:
    node = _node()
    work = tmp_path_factory.mktemp("cql")
    elm = work / "DexFreeRules.elm"
    elm.write_bytes(checked_elm(knowledge.artifacts.folder, knowledge.artifacts.by_ref["Library/dex-free-rules"]))
    urls = [v["id"] for v in json.loads(elm.read_text())["library"]["valueSets"]["def"]]
    # The artifacts the CQL reads, as a FHIR server holding the publication answers its retrieves (of the
    # ValueSets, the ones it declares: it reads the code systems of the dexamethasone set).
    artifacts = [r for r in knowledge.artifacts
                 if r["resourceType"] in ("ResearchStudy", "PlanDefinition", "ActivityDefinition", "CodeSystem")
                 or r.get("url") in urls]
    request = {
        "elm": str(elm),
        "valueSets": value_set_codes(knowledge.terminology, urls),
        "expressions": [*RULE_ORDERS.values(), *DEBUG],
        "parameters": {"Dose Tolerance Mg": DOSE_TOLERANCE_MG, "Infusion Slack Days": INFUSION_SLACK_DAYS},
        "scenarios": [{"id": name, **_engine_input(body, artifacts)} for name, body in SCENARIOS],
    }
    done = subprocess.run([node, str(TOOLS / "run.mjs")], input=json.dumps(request), capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_every_exclusion_names_a_scenario():
    """A renamed scenario must not leave a stale exclusion behind (nor silently drop out of the test)."""
    assert set(OUTSIDE_CQL) <= {name for name, _ in SCENARIOS}
    assert len({name for name, _ in SCENARIOS}) == len(SCENARIOS)


@pytest.mark.parametrize("name", [n for n, _ in SCENARIOS])
def test_cql_agrees_with_the_python_rules(name, cql_answers, runtime):
    body = dict(SCENARIOS)[name]
    python = _python_findings(runtime, body)
    answer = cql_answers[name]
    assert "error" not in answer, answer.get("error")
    cql = {rule: sorted(set(answer[expression] or [])) for rule, expression in RULE_ORDERS.items()}
    if name in OUTSIDE_CQL:
        assert cql != python, f"{name}: listed as outside the CQL ({OUTSIDE_CQL[name]}) but it now agrees"
        return
    assert cql == python, (f"{name}: the CQL and the Python rules disagree\n  Python: {python}\n  CQL:    {cql}\n"
                           f"  CQL state: { {k: answer.get(k) for k in DEBUG} }")


def _translate(node: str, source: Path, out: Path | None = None) -> tuple[int, dict[str, Any]]:
    command = [node, str(TOOLS / "translate.mjs"), str(source), *(["--out", str(out)] if out else [])]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    return done.returncode, json.loads(done.stdout)


# The translator's warnings left, all explained in the Library's description: an operand of a function named
# like an alias of a query the function is used in (CQL scoping makes the operand win, as meant), and a
# string literal spelled like an operand ('Medication' as the resource type of a reference).
EXPLAINED_WARNINGS = ("is hiding another identifier of the same name", "matches the identifier Medication")


def test_the_reference_translator_compiles_the_cql_without_errors(tmp_path):
    code, report = _translate(_node(), CQL, tmp_path / "elm.json")
    assert code == 0 and report["errors"] == [], report["errors"]
    unexplained = [w for w in report["warnings"] if not any(e in w["message"] for e in EXPLAINED_WARNINGS)]
    assert unexplained == []
    # The committed ELM is what the translator makes of the CQL now (`make elm` writes it).
    assert (tmp_path / "elm.json").read_bytes() == elm_path(ROOT / "plan_definitions", "DexFreeRules").read_bytes(), \
        "plan_definitions/logic/DexFreeRules.elm is stale: run `make elm`"


def test_the_translator_reports_a_cql_that_does_not_compile(tmp_path):
    broken = tmp_path / "Broken.cql"
    broken.write_text(CQL.read_text().replace('define "Arm":', 'define "Arm" ::'))
    code, report = _translate(_node(), broken, tmp_path / "broken.json")
    assert code == 1 and report["errors"] and not (tmp_path / "broken.json").exists()


def test_the_cql_names_no_protocol_number_or_code():
    """Cycle lengths, days, doses, ages and the NCT number are read from the artifacts, never written."""
    code = "\n".join(line.split("//")[0] for line in CQL.read_text().split("*/", 1)[1].splitlines())
    for written in ("NCT06561854'", "'icaria", "'ikema", "28", " 40", " 20 ", "75", "'3264'", "H02AB02", "'C90"):
        assert written not in code, written


def test_the_lock_file_pins_every_package_without_download_addresses():
    lock = json.loads((TOOLS / "package-lock.json").read_text())
    packages = {k: v for k, v in lock["packages"].items() if k}
    assert packages and all(p.get("version") and p.get("integrity") for p in packages.values())
    assert not any("resolved" in p for p in packages.values())
    wanted = json.loads((TOOLS / "package.json").read_text())["dependencies"]
    assert all(version[0].isdigit() for version in wanted.values()), "pin exact versions"


def test_published_library_carries_its_elm_beside_the_cql(knowledge, tmp_path):
    from cds_service.knowledge.publish import publish

    paths = publish(knowledge, tmp_path)
    bundle = json.loads(paths["bundle"].read_text())
    [library] = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Library"]
    assert [c["contentType"] for c in library["content"]] == ["text/cql", "application/elm+json"]
    cql, elm = (base64.b64decode(c["data"]) for c in library["content"])
    assert cql == CQL.read_bytes()
    assert json.loads(elm)["library"]["identifier"] == {"id": "DexFreeRules", "version": "1.0.0"}
    assert SOURCE_TAG in elm.decode()
    # The source files stay as written: only the publication carries the ELM.
    assert len(knowledge.artifacts.by_ref["Library/dex-free-rules"]["content"]) == 1


def test_publish_refuses_an_elm_not_compiled_from_the_shipped_cql(artifact_copy, tmp_path):
    source = artifact_copy / "logic" / "DexFreeRules.cql"
    source.write_text(source.read_text() + "\ndefine \"Added\": true\n")
    embed_sources(artifact_copy)
    result = subprocess.run([sys.executable, "-m", "cds_service.cli", "publish", "--out", str(tmp_path / "out")],
                            cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={"CDS_PLAN_DEFINITIONS": str(artifact_copy), "PATH": ""})
    assert result.returncode == 2
    assert "not compiled from the shipped CQL" in result.stderr and "make elm" in result.stderr
    assert not (tmp_path / "out").exists()


def test_publish_refuses_a_library_without_its_elm(artifact_copy):
    (artifact_copy / "logic" / "DexFreeRules.elm").unlink()
    with pytest.raises(ConfigError, match="no compiled ELM"):
        checked_elm(artifact_copy, json.loads((artifact_copy / "rules" / "Library-dex-free-rules.json").read_text()))


def test_value_sets_are_listed_for_the_engine_with_their_system_aliases(knowledge):
    codes = value_set_codes(knowledge.terminology, ["https://dexfree.example.org/fhir/ValueSet/dexamethasone"])
    listed = {(c["system"], c["code"]) for c in codes["https://dexfree.example.org/fhir/ValueSet/dexamethasone"]}
    assert ("http://www.nlm.nih.gov/research/umls/rxnorm", "3264") in listed
    assert ("http://www.nlm.nih.gov/research/umls/rxnorm", "197582") in listed  # from the included set
    aliases = [a for a, s in knowledge.terminology.systems.items() if s == "http://www.nlm.nih.gov/research/umls/rxnorm"
               and a != s]
    assert aliases and all((a, "3264") in listed for a in aliases)
    with pytest.raises(ConfigError, match="filter"):
        value_set_codes(knowledge.terminology, ["https://dexfree.example.org/fhir/ValueSet/other-malignancy"])


def test_the_service_allowances_default_to_the_python_rules_own():
    """The two parameters are the service's allowances (not protocol numbers); their defaults are its values."""
    elm = json.loads(elm_path(ROOT / "plan_definitions", "DexFreeRules").read_text())
    defaults = {p["name"]: p.get("default", {}).get("value") for p in elm["library"]["parameters"]["def"]}
    assert float(defaults["Dose Tolerance Mg"]) == DOSE_TOLERANCE_MG
    assert int(defaults["Infusion Slack Days"]) == INFUSION_SLACK_DAYS
