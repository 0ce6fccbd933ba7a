"""Site adaptations (CDS_SITE_ARTIFACTS): the shipped example loads; what breaks the trial's rule or the
files stops the start, naming the file and the reason; the site's view holds its regimens; publication."""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cds_service import cli
from cds_service.config import REPO_ROOT, Config
from cds_service.errors import ConfigError
from cds_service.knowledge.model import Knowledge, load_knowledge
from cds_service.knowledge.publish import package_name, package_version

EXAMPLE = REPO_ROOT / "deploy" / "sites" / "example-site"
SITE = "example-site"
PUB = "https://dexfree.example.org/fhir/PlanDefinition"
SITE_BASE = "https://fhir.example-hospital.org/dexfree/PlanDefinition"
PLANS = Config().plan_definitions
ICARIA_B = "PlanDefinition-example-site-icaria-arm-b.json"
ICARIA_A = "PlanDefinition-example-site-icaria-arm-a.json"


@pytest.fixture(scope="module")
def sited() -> Knowledge:
    return load_knowledge(PLANS, None, EXAMPLE)


@pytest.fixture
def site_copy(tmp_path: Path) -> Path:
    target = tmp_path / "sites" / SITE
    shutil.copytree(EXAMPLE, target)
    return target.parent


@pytest.fixture
def edit_site(site_copy: Path) -> Callable[[str, Callable[[dict[str, Any]], None]], Path]:
    """Change one file of a copy of the example site with a function; returns the sites folder."""
    def edit(name: str, change: Callable[[dict[str, Any]], None]) -> Path:
        path = site_copy / SITE / name
        resource = json.loads(path.read_text())
        change(resource)
        path.write_text(json.dumps(resource, indent=2, ensure_ascii=False))
        return site_copy
    return edit


def cycles(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return plan["action"][0]["action"]


def action(plan: dict[str, Any], action_id: str) -> dict[str, Any]:
    return next(a for c in cycles(plan) for a in c["action"] if a["id"] == action_id)


def days(regimen, cycle: int, drug: str) -> list[tuple[tuple[int, ...], tuple[str, ...]]]:
    return [(a.days, tuple(o.describe() for o in a.options)) for a in regimen.block(cycle).drug_actions(drug)]


# --- the shipped example --------------------------------------------------------------------------

def test_the_example_site_adapts_all_four_regimens_each_derived_from_its_published_one(sited):
    assert sited.sites.names() == (SITE,)
    view = sited.for_site(SITE)
    assert {(r.key, r.arm) for r in view.regimens} == {(r.key, r.arm) for r in sited.regimens}
    for regimen in view.regimens:
        published = sited.regimen(regimen.key, regimen.arm)
        assert regimen.site == SITE and regimen.derived_from == published.url
        assert regimen.url.startswith(SITE_BASE) and regimen.canonical != published.canonical
        assert regimen.first_cycle_without("dexamethasone") == published.first_cycle_without("dexamethasone")
        assert "Example Hospital" in regimen.publisher and SITE in regimen.whose()


def test_the_published_view_is_unchanged_and_a_site_without_files_gets_the_published_regimens(sited):
    published = load_knowledge(PLANS)
    assert sited.regimens == published.regimens
    assert sited.for_site("another-site").regimens == published.regimens
    assert sited.for_site(SITE).for_site(None).regimens == published.regimens
    assert all(r.site is None and r.whose() == "the published regimen" for r in sited.regimens)


def test_example_icaria_splits_dexamethasone_over_days_1_and_2_with_its_age_bands(sited):
    for arm in ("A", "B"):
        regimen = sited.for_site(SITE).regimen("ICARIA", arm)
        for cycle in (1, 2):
            assert days(regimen, cycle, "dexamethasone") == [((1, 2, 8, 9, 15, 16, 22, 23), ("20 mg", "10 mg"))]
        dex = regimen.block(1).drug("dexamethasone")
        assert (dex.dose_for_age(74).value, dex.dose_for_age(75).value) == (20, 10)
        assert days(sited.regimen("ICARIA", arm), 1, "dexamethasone") == [((1, 8, 15, 22), ("40 mg", "20 mg"))]


def test_example_ikema_gives_carfilzomib_once_weekly_and_keeps_the_rest(sited):
    for arm in ("A", "B"):
        regimen = sited.for_site(SITE).regimen("IKEMA", arm)
        published = sited.regimen("IKEMA", arm)
        assert days(regimen, 1, "carfilzomib") == [((1,), ("20 mg/m2",)), ((8, 15), ("70 mg/m2",))]
        assert days(regimen, 2, "carfilzomib") == [((1, 8, 15), ("70 mg/m2",))]
        assert days(regimen, 4, "carfilzomib") == [((1, 8, 15), ("70 mg/m2",))]
        for cycle in (1, 2, 4):
            assert days(regimen, cycle, "dexamethasone") == days(published, cycle, "dexamethasone")
            assert days(regimen, cycle, "isatuximab") == days(published, cycle, "isatuximab")


@pytest.mark.parametrize("canonical", [
    f"{SITE_BASE}/example-site-ikema-arm-b",
    f"{SITE_BASE}/example-site-ikema-arm-b|1.0.0",
    "PlanDefinition/example-site-ikema-arm-b",
    f"{PUB}/ikema-arm-b",
])
def test_a_careplan_canonical_of_the_site_or_the_published_regimen_names_the_views_regimen(sited, canonical):
    view = sited.for_site(SITE)
    assert view.regimen_for_canonical(canonical).canonical == f"{SITE_BASE}/example-site-ikema-arm-b|1.0.0"
    # Where no site is chosen, the site's PlanDefinition still names its stratum and arm (the published one).
    assert sited.regimen_for_canonical(canonical).canonical == f"{PUB}/ikema-arm-b|1.0.0"


def test_an_unknown_canonical_names_no_regimen(sited):
    assert sited.for_site(SITE).regimen_for_canonical(f"{SITE_BASE}/other-regimen") is None


# --- the trial's rule: dexamethasone in the same cycles at every site -----------------------------

def _dex_in_cycles_3_on(plan):
    dex = json.loads(json.dumps(action(plan, "c2-dexamethasone")))
    dex["id"] = "c3-dexamethasone"
    cycles(plan)[2]["action"].append(dex)


def _cycle_2_twice(plan):
    cycles(plan)[1]["timingTiming"]["repeat"]["count"] = 2


def _dex_again_from_cycle_5(plan):
    later = json.loads(json.dumps(cycles(plan)[2]))
    later["id"] = "cycles-5-on"
    dex = json.loads(json.dumps(action(plan, "c2-dexamethasone")))
    dex["id"] = "c5-dexamethasone"
    later["action"].append(dex)
    cycles(plan)[2]["timingTiming"]["repeat"]["count"] = 2
    cycles(plan).append(later)


@pytest.mark.parametrize(("change", "named"), [
    (_dex_in_cycles_3_on, r"action c3-dexamethasone \(cycle definition cycles-3-on\) gives dexamethasone in "
                          r"cycle 3.*gives none from cycle 3: in arm B"),
    (_cycle_2_twice, r"action c2-dexamethasone \(cycle definition cycle-2\) gives dexamethasone in cycle 3"),
    (_dex_again_from_cycle_5, r"action c5-dexamethasone \(cycle definition cycles-5-on\) gives dexamethasone "
                              r"in cycle 5"),
])
def test_an_arm_b_adaptation_giving_dexamethasone_from_cycle_3_is_refused_naming_file_and_action(
        edit_site, change, named):
    folder = edit_site(ICARIA_B, change)
    with pytest.raises(ConfigError, match=f"CDS_SITE_ARTIFACTS {SITE}/{ICARIA_B}: {named}"):
        load_knowledge(PLANS, None, folder)


def test_the_start_stops_with_the_message_when_an_adaptation_breaks_the_arm_b_rule(
        edit_site, monkeypatch, capsys):
    folder = edit_site(ICARIA_B, _dex_in_cycles_3_on)
    monkeypatch.setenv("CDS_SITE_ARTIFACTS", str(folder))
    monkeypatch.setenv("CDS_REPLAY_DB", ":memory:")
    assert cli.main(["serve"]) == 2
    error = capsys.readouterr().err
    assert ICARIA_B in error and "c3-dexamethasone" in error and "cycle 3" in error


def _no_dex_in_cycle_2(plan):
    cycles(plan)[1]["action"] = [a for a in cycles(plan)[1]["action"] if "dexamethasone" not in a["id"]]


def _arm_a_stops_dex_from_cycle_4(plan):
    later = json.loads(json.dumps(cycles(plan)[1]))
    later["id"] = "cycles-4-on"
    later["action"] = [a for a in later["action"] if "dexamethasone" not in a["id"]]
    cycles(plan)[1]["timingTiming"]["repeat"]["count"] = 2
    cycles(plan).append(later)


@pytest.mark.parametrize(("name", "change", "named"), [
    (ICARIA_B, _no_dex_in_cycle_2, "cycle definition cycle-2 gives no dexamethasone in cycle 2"),
    (ICARIA_A, _arm_a_stops_dex_from_cycle_4, "cycle definition cycles-4-on gives no dexamethasone in cycle 4"),
])
def test_an_adaptation_may_not_move_where_dexamethasone_stops_the_other_way_either(edit_site, name, change,
                                                                                     named):
    with pytest.raises(ConfigError, match=f"{name}: {named}.*not the cycles it is given in"):
        load_knowledge(PLANS, None, edit_site(name, change))


def test_an_adaptation_may_change_cycle_lengths(edit_site):
    def three_weeks(plan):
        for cycle in cycles(plan):
            cycle["timingTiming"]["repeat"]["duration"] = 21
    regimen = load_knowledge(PLANS, None, edit_site(ICARIA_B, three_weeks)).for_site(SITE).regimen("ICARIA", "B")
    assert (regimen.cycle_start(3), regimen.cycle_and_day(42), regimen.gives("dexamethasone", 3)) == (42, (3, 1),
                                                                                                       False)


# --- broken files ---------------------------------------------------------------------------------

def _write(folder: Path, name: str, text: str) -> Path:
    (folder / SITE / name).write_text(text)
    return folder


def test_two_adaptations_of_one_regimen_for_one_site_are_refused(site_copy):
    plan = json.loads((site_copy / SITE / ICARIA_B).read_text())
    plan.update(id=plan["id"] + "-v2", url=plan["url"] + "-v2")
    _write(site_copy, "PlanDefinition-second.json", json.dumps(plan))
    with pytest.raises(ConfigError, match=f"{SITE}/PlanDefinition-second.json: site example-site already has an "
                                          f"adaptation of {PUB}/icaria-arm-b"):
        load_knowledge(PLANS, None, site_copy)


def test_two_sites_in_one_folder_each_get_their_own_adaptation(site_copy):
    plan = json.loads((site_copy / SITE / ICARIA_B).read_text())
    plan.update(id="other-site-icaria-arm-b", url=plan["url"].replace("example-site", "other-site"))
    plan["useContext"][0]["valueCodeableConcept"]["coding"][0]["code"] = "other-site"
    (site_copy / "other-site").mkdir()
    (site_copy / "other-site" / "PlanDefinition-other-site-icaria-arm-b.json").write_text(json.dumps(plan))
    sited = load_knowledge(PLANS, None, site_copy)
    assert sited.sites.names() == ("example-site", "other-site")
    other = sited.for_site("other-site")
    assert other.regimen("ICARIA", "B").site == "other-site"
    assert other.regimen("IKEMA", "B") == sited.regimen("IKEMA", "B")  # not adapted there: the published one
    assert [a["id"] for a in sited.sites.artifacts_of("other-site")] == [
        "example-site-dexamethasone-10mg-split-75-and-over", "example-site-dexamethasone-20mg-split",
        "other-site-icaria-arm-b"]


@pytest.mark.parametrize(("name", "change", "reason"), [
    (ICARIA_B, lambda p: p["useContext"].clear(), "needs one useContext with code .*#venue"),
    (ICARIA_B, lambda p: p.pop("useContext"), "needs one useContext"),
    (ICARIA_B, lambda p: p["useContext"][0]["valueCodeableConcept"]["coding"].append({"code": "other-site"}),
     r"exactly one coding.*\(found 2\)"),
    (ICARIA_B, lambda p: p["relatedArtifact"].pop(0), "needs exactly one relatedArtifact of type derived-from"),
    (ICARIA_B, lambda p: p["relatedArtifact"][0].update(resource=f"{PUB}/velcade-arm-b"),
     f"{PUB}/velcade-arm-b does not resolve"),
    (ICARIA_B, lambda p: p["relatedArtifact"][0].update(resource="https://regimens.example.net/PlanDefinition/x"),
     "derived-from https://regimens.example.net/PlanDefinition/x is not a published regimen"),
    (ICARIA_B, lambda p: p["relatedArtifact"][0].update(resource=f"{PUB}/icaria-arm-b|9.9.9"),
     "names version 9.9.9, the artifact is 1.0.0"),
    (ICARIA_B, lambda p: p["relatedArtifact"][0].update(resource="https://dexfree.example.org/fhir/ResearchStudy/"
                                                                 "nct06561854"), "is not a published regimen"),
    (ICARIA_B, lambda p: p.update(id="icaria-arm-b"), r"needs a unique id \(PlanDefinition/icaria-arm-b\)"),
    (ICARIA_B, lambda p: p.update(url=f"{PUB}/icaria-arm-b"), f"canonical {PUB}/icaria-arm-b is used twice"),
    (ICARIA_B, lambda p: p.pop("publisher"), "metadata missing: publisher"),
    (ICARIA_B, lambda p: p.update(status="retired"), "status 'retired'"),
    (ICARIA_B, lambda p: p.update(madeUp=True), "not a valid FHIR R4 PlanDefinition"),
    (ICARIA_B, lambda p: action(p, "c1-dexamethasone")["action"][0].update(
        definitionCanonical="https://fhir.example-hospital.org/dexfree/ActivityDefinition/missing"),
     "does not resolve"),
    (ICARIA_B, lambda p: cycles(p)[0]["timingTiming"]["repeat"].update(durationUnit="wk"),
     "needs timingTiming.repeat duration in days"),
])
def test_a_broken_adaptation_stops_the_start_naming_the_file_and_the_reason(edit_site, name, change, reason):
    with pytest.raises(ConfigError, match=f"CDS_SITE_ARTIFACTS {SITE}/{name}: .*{reason}"):
        load_knowledge(PLANS, None, edit_site(name, change))


@pytest.mark.parametrize(("text", "reason"), [
    ("{not json", "not readable JSON"),
    ('["a list"]', "not a FHIR resource"),
    (json.dumps({"resourceType": "ValueSet", "id": "vs", "url": "https://fhir.example-hospital.org/dexfree/"
                 "ValueSet/vs", "version": "1", "status": "draft", "name": "Vs", "title": "Vs",
                 "date": "2026-12-01", "publisher": "Example"}), "is a PlanDefinition .* or an ActivityDefinition"),
    (json.dumps({"resourceType": "Patient", "id": "p"}), "metadata missing"),
])
def test_a_file_that_is_not_a_site_artifact_stops_the_start(site_copy, text, reason):
    with pytest.raises(ConfigError, match=f"CDS_SITE_ARTIFACTS {SITE}/Extra.json: .*{reason}"):
        load_knowledge(PLANS, None, _write(site_copy, "Extra.json", text))


def test_a_missing_or_empty_folder_stops_the_start(tmp_path):
    with pytest.raises(ConfigError, match=r"CDS_SITE_ARTIFACTS: .* is not a folder"):
        load_knowledge(PLANS, None, tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="no site PlanDefinition"):
        load_knowledge(PLANS, None, tmp_path)


def test_an_adaptation_with_a_drug_outside_the_regimens_is_refused(edit_site):
    def other_product(activity):
        activity["productCodeableConcept"] = {"text": "paracetamol"}
    folder = edit_site("ActivityDefinition-example-site-dexamethasone-20mg-split.json", other_product)
    with pytest.raises(ConfigError, match=f"{ICARIA_A}: ActivityDefinition/example-site-dexamethasone-20mg-split: "
                                          "product is none of"):
        load_knowledge(PLANS, None, folder)


# --- publication ----------------------------------------------------------------------------------

def test_publish_site_writes_the_sites_bundle_and_its_own_package(monkeypatch, tmp_path, capsys, sited):
    monkeypatch.setenv("CDS_SITE_ARTIFACTS", str(EXAMPLE))
    assert cli.main(["publish", "--out", str(tmp_path), "--site", SITE]) == 0
    assert "7 artifacts of site example-site validated" in capsys.readouterr().out
    folder = tmp_path / "sites" / SITE
    bundle = json.loads((folder / "bundle.json").read_text())
    assert bundle["type"] == "transaction"
    refs = sorted(e["request"]["url"] for e in bundle["entry"])
    assert {e["request"]["method"] for e in bundle["entry"]} == {"PUT"}
    assert refs == sorted(f"{p.name.split('-', 1)[0]}/{p.stem.split('-', 1)[1]}" for p in EXAMPLE.glob("*.json"))
    manifest = json.loads((folder / "package" / "package.json").read_text())
    assert manifest["name"] == f"{package_name(sited)}.example-site"
    assert manifest["dependencies"][package_name(sited)] == package_version(sited.artifacts)
    assert manifest["canonical"] == "https://fhir.example-hospital.org/dexfree"
    with tarfile.open(folder / f"{manifest['name']}-{manifest['version']}.tgz") as tgz:
        assert len([n for n in tgz.getnames() if n.endswith(".json")]) == 7 + 2
    # The published artifacts are written as before, without the site's.
    published = json.loads((tmp_path / "bundle.json").read_text())
    assert not any("example-site" in e["request"]["url"] for e in published["entry"])


def test_publish_an_unknown_site_fails_naming_the_known_ones(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CDS_SITE_ARTIFACTS", str(EXAMPLE))
    assert cli.main(["publish", "--out", str(tmp_path), "--site", "nowhere"]) == 2
    assert "--site nowhere: no adaptation of that site (sites: example-site)" in capsys.readouterr().err
