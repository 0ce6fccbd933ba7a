"""Site adaptations through real hook calls: a call's site (JWT tenant, fhirServer, default) chooses whose
regimen the dose, days and cycle clock follow; the arm B warnings are the same at every site.

The standard patient (tests/rules/scenario.py) is in arm B of NCT06561854 on ICARIA, cycle 1 day 1
2026-09-01, aged 66. Sites: `example-site` (the shipped example: ICARIA dexamethasone split 20 mg on days
1-2, 8-9, …; IKEMA carfilzomib once weekly), `frail-site` (ICARIA arm B at 20 mg on days 1, 8, 15, 22 at
every age), `three-week-site` (ICARIA arm B in 21-day cycles); `published-site` has no adaptation.
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cds_service.app import create_app
from cds_service.audit.report import build_report
from cds_service.audit.store import AuditStore
from cds_service.config import REPO_ROOT, Config
from cds_service.errors import ConfigError
from cds_service.knowledge.model import Knowledge, load_knowledge
from cds_service.runtime import Runtime
from cds_service.security.caller import Caller
from cds_service.security.issuers import load_issuers
from cds_service.security.jwt_auth import build_authenticator
from cds_service.services.sites import choose_site
from tests.conftest import FIXED_NOW
from tests.rules.scenario import (
    administration,
    call,
    care_plan,
    day_of,
    dex_order,
    patient,
)
from tests.security.tokens import SANDBOX_ISS, SANDBOX_JKU, SANDBOX_JWKS, sandbox_token, write_issuers
from tests.spec import check_cds_response

EXAMPLE = REPO_ROOT / "deploy" / "sites" / "example-site"
SITE_BASE = "https://fhir.example-hospital.org/dexfree/PlanDefinition"
PUB = "https://dexfree.example.org/fhir/PlanDefinition"
SIGN = "/cds-services/dex-free-order-sign"
AUD = "http://localhost" + SIGN
ALL_SITES = (None, "example-site", "frail-site", "three-week-site", "published-site")


def _derived(plan: dict[str, Any], site: str, change) -> dict[str, Any]:
    plan = json.loads(json.dumps(plan))
    plan["id"] = f"{site}-icaria-arm-b"
    plan["url"] = f"https://{site}.example.net/fhir/PlanDefinition/{site}-icaria-arm-b"
    plan["publisher"] = f"{site} haematology"
    plan["useContext"][0]["valueCodeableConcept"]["coding"][0]["code"] = site
    change(plan)
    return plan


def _frail(plan):
    for cycle in plan["action"][0]["action"]:
        for action in cycle["action"]:
            if "dexamethasone" in action["id"]:
                action.pop("action", None)
                action.pop("selectionBehavior", None)
                action["extension"][0]["extension"] = [{"url": "day", "valueInteger": d} for d in (1, 8, 15, 22)]
                action["definitionCanonical"] = "https://dexfree.example.org/fhir/ActivityDefinition/dexamethasone-20mg"


def _three_weeks(plan):
    for cycle in plan["action"][0]["action"]:
        cycle["timingTiming"]["repeat"]["duration"] = 21


@pytest.fixture(scope="module")
def sites_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sites")
    shutil.copytree(EXAMPLE, folder / "example-site")
    plan = json.loads((EXAMPLE / "PlanDefinition-example-site-icaria-arm-b.json").read_text())
    for site, change in (("frail-site", _frail), ("three-week-site", _three_weeks)):
        (folder / site).mkdir()
        (folder / site / f"PlanDefinition-{site}-icaria-arm-b.json").write_text(
            json.dumps(_derived(plan, site, change)))
    return folder


@pytest.fixture(scope="module")
def sited(sites_folder) -> Knowledge:
    return load_knowledge(Config().plan_definitions, None, sites_folder)


class SpyAudit:
    """Records the caller (with the site the runtime chose) of each call that returned cards."""

    def __init__(self):
        self.callers: list[Caller] = []

    def cards_shown(self, service_id, request, record, cards, caller):
        self.callers.append(caller)

    def feedback_received(self, service_id, entries, caller):
        return {"received": len(entries)}

    def describe(self):
        return "spy"


def client_for(knowledge, audit=None, authenticator=None, **settings):
    config = Config(**settings)
    runtime = Runtime(config=config, knowledge=knowledge, clock=lambda: FIXED_NOW, audit=audit or SpyAudit(),
                      authenticator=authenticator)
    return create_app(runtime=runtime).test_client()


def post(client, body, headers=None, service=SIGN):
    response = client.post(service, data=json.dumps(body), content_type="application/json", headers=headers or {})
    assert response.status_code == 200, response.get_json()
    payload = response.get_json()
    check_cds_response(payload)
    return payload["cards"]


def rules(cards):
    return [c["extension"]["dexfree"]["rule"] for c in cards]


def at(knowledge, site, body, service=SIGN):
    """The cards of one call answered for `site` (CDS_DEFAULT_SITE; None: the published regimens)."""
    return post(client_for(knowledge, default_site=site), body, service=service)


# --- the dose and day check follows the site's regimen ------------------------------------------

DOSE_CASES = [
    # (order, {site: expected rules}); sites left out answer as the published regimen.
    ("20 mg on cycle 2 day 2 (the example's split)", dex_order(day_of(2, 2), dose=20),
     {None: ["dex-dose-mismatch"], "example-site": [], "frail-site": ["dex-dose-mismatch"]}),
    ("20 mg on cycle 2 day 1", dex_order(day_of(2, 1), dose=20),
     {None: ["dex-dose-mismatch"], "example-site": [], "frail-site": []}),
    ("40 mg on cycle 2 day 1 (the published dose)", dex_order(day_of(2, 1), dose=40),
     {None: [], "example-site": ["dex-dose-mismatch"], "frail-site": ["dex-dose-mismatch"]}),
    ("20 mg on cycle 1 day 23", dex_order(day_of(1, 23), dose=20),
     {None: ["dex-dose-mismatch"], "example-site": [], "frail-site": ["dex-dose-mismatch"]}),
    ("20 mg on cycle 2 day 3 (no site's day)", dex_order(day_of(2, 3), dose=20),
     {None: ["dex-dose-mismatch"], "example-site": ["dex-dose-mismatch"], "frail-site": ["dex-dose-mismatch"]}),
]


@pytest.mark.parametrize(("order", "expected"), [c[1:] for c in DOSE_CASES], ids=[c[0] for c in DOSE_CASES])
@pytest.mark.parametrize("site", [s for s in ALL_SITES if s != "three-week-site"])
def test_a_correct_order_at_an_adapting_site_gets_no_dose_card(sited, order, expected, site):
    answer = expected.get(site, expected[None])
    assert rules(at(sited, site, call(orders=(order,)))) == answer


def test_the_site_split_fits_its_age_bands(sited):
    old = patient("1951-09-01")  # 75 on cycle 2
    assert rules(at(sited, "example-site", call(orders=(dex_order(day_of(2, 2), dose=10),),
                                                patient_resource=old))) == []
    assert rules(at(sited, "example-site", call(orders=(dex_order(day_of(2, 2), dose=20),),
                                                patient_resource=old))) == ["dex-dose-mismatch"]


def test_the_dose_card_says_whose_regimen_it_checked_against(sited):
    (site_card,) = at(sited, "example-site", call(orders=(dex_order(day_of(2, 1), dose=40),)))
    detail = site_card["detail"]
    assert "Checked against site example-site's regimen." in detail
    assert "**Change the dose to 20 mg**" in detail and "on days 1, 2, 8, 9, 15, 16, 22, 23" in detail
    assert site_card["extension"]["dexfree"]["regimenCanonical"] == \
        f"{SITE_BASE}/example-site-icaria-arm-b|1.0.0"
    (published_card,) = at(sited, None, call(orders=(dex_order(day_of(2, 1), dose=20),)))
    assert "Checked against the published regimen." in published_card["detail"]
    assert published_card["extension"]["dexfree"]["regimenCanonical"] == f"{PUB}/icaria-arm-b|1.0.0"


# --- the arm B rule is the same everywhere ------------------------------------------------------

ARM_B_CASES = [
    ("cycle 3 day 1, 40 mg", dex_order(day_of(3, 1)), "dex-after-cycle-2"),
    ("cycle 3 day 2, the example's 20 mg", dex_order(day_of(3, 2), dose=20), "dex-after-cycle-2"),
    ("cycle 4 day 1", dex_order(), "dex-after-cycle-2"),
    ("weekly from cycle 2 day 22 for 10 days", dex_order(day_of(2, 22), days=10, frequency=(1, 1, "wk")),
     "dex-extends-past-cycle-2"),
    ("open-ended from cycle 2 day 22", dex_order(day_of(2, 22), days=None), "dex-extends-past-cycle-2"),
]


@pytest.mark.parametrize(("order", "rule"), [c[1:] for c in ARM_B_CASES], ids=[c[0] for c in ARM_B_CASES])
@pytest.mark.parametrize("site", [s for s in ALL_SITES if s != "three-week-site"])
def test_the_arm_b_warning_holds_at_every_site(sited, order, rule, site):
    cards = at(sited, site, call(orders=(order,)))
    assert rule in rules(cards)
    warning = next(c for c in cards if c["extension"]["dexfree"]["rule"] == rule)
    assert warning["indicator"] == "warning"


def test_a_sites_cycle_lengths_drive_the_cycle_clock(sited):
    # 2026-10-14 is cycle 2 day 44-28=16 in 28-day cycles, cycle 3 day 2 in the site's 21-day cycles.
    order = dex_order(date(2026, 10, 14))
    assert rules(at(sited, None, call(orders=(order,)))) == ["dex-dose-mismatch"]
    (card,) = at(sited, "three-week-site", call(orders=(order,)))
    assert card["extension"]["dexfree"]["rule"] == "dex-after-cycle-2"
    assert (card["extension"]["dexfree"]["cycle"], card["extension"]["dexfree"]["cycleDay"]) == (3, 2)
    # The day before is the site's cycle 2 day 21 (cycle 2 day 15 in the published calendar).
    (card,) = at(sited, "three-week-site", call(orders=(dex_order(date(2026, 10, 12)),)))
    assert (card["extension"]["dexfree"]["cycle"], card["extension"]["dexfree"]["cycleDay"]) == (2, 21)


# --- CarePlans instantiating a site's regimen ---------------------------------------------------

def _site_plan(url: str, plan_id: str = "cp-1") -> dict[str, Any]:
    plan = care_plan(plan_id=plan_id)
    plan["instantiatesCanonical"] = [url]
    return plan


@pytest.mark.parametrize("canonical", [f"{SITE_BASE}/example-site-ikema-arm-b",
                                       f"{SITE_BASE}/example-site-ikema-arm-b|1.0.0"])
def test_a_careplan_instantiating_the_sites_regimen_is_recognised(sited, canonical):
    body = call(orders=(dex_order(day_of(3, 2), dose=20),), plans=(_site_plan(canonical),))
    (card,) = at(sited, "example-site", body)
    found = card["extension"]["dexfree"]
    assert (found["rule"], found["regimen"]) == ("dex-after-cycle-2", "IKEMA")
    assert found["regimenCanonical"] == f"{SITE_BASE}/example-site-ikema-arm-b|1.0.0"
    assert "Arm B, IKEMA" in card["detail"] and "CarePlan/cp-1" in found["evidence"]
    # Where the call has no site, the site's PlanDefinition still says IKEMA: 20 mg on day 2 is IKEMA's dose
    # (the published ICARIA would give 40 mg on day 1 only).
    assert rules(at(sited, None, call(orders=(dex_order(day_of(2, 2), dose=20),),
                                      plans=(_site_plan(canonical),)))) == []


def test_a_careplan_of_the_sites_arm_a_version_contradicts_an_arm_b_subject(sited):
    body = call(orders=(dex_order(day_of(3, 1)),), plans=(_site_plan(f"{SITE_BASE}/example-site-icaria-arm-a"),))
    (card,) = at(sited, "example-site", body)
    assert card["extension"]["dexfree"]["rule"] == "cannot-verify"
    assert "follows the arm A version of ICARIA" in card["detail"]


def test_patient_view_names_the_sites_regimen(sited):
    body = call("patient-view", plans=(_site_plan(f"{SITE_BASE}/example-site-ikema-arm-b"),))
    (card,) = at(sited, "example-site", body, service="/cds-services/dex-free-patient-view")
    assert card["extension"]["dexfree"]["regimen"] == "IKEMA"


def test_weekly_carfilzomib_given_tells_ikema_and_the_sites_dose_check_applies(sited):
    given = [administration("isatuximab", day_of(c, d), f"isa-{c}-{d}") for c, d in ((1, 1), (1, 8), (1, 15),
                                                                                      (1, 22), (2, 1), (2, 15))]
    given += [administration("carfilzomib", day_of(c, d), f"cfz-{c}-{d}") for c, d in ((1, 1), (1, 8), (1, 15),
                                                                                       (2, 1), (2, 8), (2, 15))]
    for day, dose, expected in ((day_of(2, 16), 20, []), (day_of(2, 16), 40, ["dex-dose-mismatch"]),
                                (day_of(3, 1), 20, ["dex-after-cycle-2"])):
        body = call(orders=(dex_order(day, dose=dose),), plans=(), administrations=tuple(given))
        cards = at(sited, "example-site", body)
        assert rules(cards) == expected
        for card in cards:
            assert card["extension"]["dexfree"]["regimen"] == "IKEMA"
            assert card["extension"]["dexfree"]["regimenCanonical"] == f"{SITE_BASE}/example-site-ikema-arm-b|1.0.0"


# --- which site a call belongs to ---------------------------------------------------------------

def test_site_choice_order_tenant_then_fhir_server_then_default():
    config = Config(site_fhir_servers=(("site-a", "https://ehr.a.example/fhir"),
                                       ("site-a-onco", "https://ehr.a.example/fhir/onco"),
                                       ("site-b", "https://ehr.b.example")), default_site="site-d")
    assert choose_site(Caller(tenant="t", site="site-t"), "https://ehr.b.example/r4", config).site == "site-t"
    assert choose_site(Caller(tenant="t"), "https://ehr.b.example/r4", config).how == "fhirServer"
    assert choose_site(Caller(), "https://ehr.a.example/fhir/onco/r4", config).site == "site-a-onco"
    assert choose_site(Caller(), "https://ehr.a.example/fhir/r4", config).site == "site-a"
    assert choose_site(Caller(), "https://ehr.a.example/fhirx", config).site == "site-d"  # whole segments
    assert choose_site(Caller(), "http://ehr.b.example", config).site == "site-d"  # another scheme
    assert choose_site(Caller(), None, config).how == "default"
    assert choose_site(Caller(), None, Config()).site is None


@pytest.fixture
def issuers_file(tmp_path):
    shutil.copy(SANDBOX_JWKS, tmp_path / "sandbox-jwks.json")
    return write_issuers(tmp_path, [{
        "iss": SANDBOX_ISS, "jwks_file": "sandbox-jwks.json", "jku": [SANDBOX_JKU],
        "tenants": ["tenant-x", "tenant-y", "tenant-z"],
        "sites": {"tenant-x": "example-site", "tenant-y": "frail-site"},
    }], {})


def test_the_issuers_file_maps_tenants_to_sites(issuers_file):
    (issuer,) = load_issuers(issuers_file).values()
    assert (issuer.site_of("tenant-x"), issuer.site_of("tenant-z"), issuer.site_of(None)) == \
        ("example-site", None, None)


@pytest.mark.parametrize(("change", "message"), [
    ({"sites": ["example-site"]}, '"sites" must be an object mapping tenant claims to site ids'),
    ({"sites": {"tenant-x": 3}}, '"sites" must be an object'),
    ({"sites": {"tenant-x": " "}}, '"sites" must be an object'),
    ({"sites": {"tenant-q": "example-site"}}, r'"sites" names tenant\(s\) tenant-q not in "tenants"'),
    ({"site": {"tenant-x": "example-site"}}, "unknown field.*site"),
])
def test_a_wrong_sites_mapping_stops_the_start(issuers_file, change, message):
    document = json.loads(issuers_file.read_text())
    document["issuers"][0].update(change)
    issuers_file.write_text(json.dumps(document))
    with pytest.raises(ConfigError, match=message):
        load_issuers(issuers_file)


def test_two_tenants_on_one_service_get_their_sites_dose_cards_and_the_same_arm_b_warning(sited, issuers_file):
    audit = SpyAudit()
    config = Config(jwt_issuers=issuers_file, replay_db=":memory:", default_site="three-week-site")
    client = client_for(sited, audit, build_authenticator(config), jwt_issuers=issuers_file,
                        replay_db=":memory:", default_site="three-week-site")

    def as_tenant(tenant, order):
        return rules(post(client, call(orders=(order,)),
                          {"Authorization": f"Bearer {sandbox_token(AUD, tenant=tenant)}"}))

    split = dex_order(day_of(2, 2), dose=20)
    assert as_tenant("tenant-x", split) == []
    assert as_tenant("tenant-y", split) == ["dex-dose-mismatch"]
    for tenant in ("tenant-x", "tenant-y", "tenant-z"):
        assert as_tenant(tenant, dex_order(day_of(3, 1))) == ["dex-after-cycle-2"]
    # tenant-z is mapped to no site: CDS_DEFAULT_SITE (21-day cycles: 2026-10-14 is cycle 3 there).
    assert as_tenant("tenant-z", dex_order(date(2026, 10, 14))) == ["dex-after-cycle-2"]
    assert [(c.tenant, c.site) for c in audit.callers] == [
        ("tenant-x", "example-site"), ("tenant-y", "frail-site"), ("tenant-x", "example-site"),
        ("tenant-y", "frail-site"), ("tenant-z", "three-week-site"), ("tenant-z", "three-week-site")]


def test_two_fhir_servers_on_one_service_get_their_sites_regimens(sited):
    client = client_for(sited, site_fhir_servers=(("example-site", "http://127.0.0.1:9/ehr-a"),
                                                  ("frail-site", "http://127.0.0.1:9/ehr-b")))

    def from_server(server, order):
        body = call(orders=(order,))
        body["fhirServer"] = server
        body["prefetch"]["researchStudy"] = body["prefetch"]["researchSubjects"]
        return rules(post(client, body))

    split = dex_order(day_of(2, 2), dose=20)
    assert from_server("http://127.0.0.1:9/ehr-a/fhir", split) == []
    assert from_server("http://127.0.0.1:9/ehr-b/fhir", split) == ["dex-dose-mismatch"]
    assert from_server("http://127.0.0.1:9/ehr-c/fhir", split) == ["dex-dose-mismatch"]  # no site: published
    for server in ("http://127.0.0.1:9/ehr-a/fhir", "http://127.0.0.1:9/ehr-b/fhir"):
        assert from_server(server, dex_order(day_of(3, 1))) == ["dex-after-cycle-2"]


def test_a_site_named_without_adaptations_is_warned_about_at_start(sited, caplog):
    runtime = Runtime(config=Config(default_site="nowhere-site", site_fhir_servers=(
        ("example-site", "https://ehr.example"),)), knowledge=sited, clock=lambda: FIXED_NOW)
    with caplog.at_level("WARNING"):
        runtime.log_start()
    warned = [r for r in caplog.records if "site without adaptations" in r.getMessage()]
    assert [r.fields["site"] for r in warned] == ["nowhere-site"]


# --- the audit trail and the report name the site and the regimen -------------------------------

def test_the_audit_and_the_report_name_the_site_and_the_regimen_checked_against(sited, tmp_path):
    store = AuditStore(f"sqlite:///{tmp_path}/audit.sqlite3", salt="s", clock=lambda: FIXED_NOW)
    try:
        for site in ("example-site", None):
            client_for(sited, store, default_site=site).post(
                SIGN, data=json.dumps(call(orders=(dex_order(day_of(3, 1)),))), content_type="application/json")
        assert store.flush(10)
        report = build_report(store.engine, zone=ZoneInfo("Europe/Paris"))
    finally:
        store.close(timeout=5)
    found = {(d["site"], d["regimenCanonical"]) for d in report["potentialDeviations"]}
    assert found == {("example-site", f"{SITE_BASE}/example-site-icaria-arm-b|1.0.0"),
                     ("(unidentified caller)", f"{PUB}/icaria-arm-b|1.0.0")}
    assert {c["site"] for c in report["counts"]} == {"example-site", "(unidentified caller)"}


@pytest.mark.parametrize(("value", "message"), [
    ("example-site", "CDS_SITE_FHIR_SERVERS=.*is not SITE=BASE_URL"),
    ("=https://ehr.example", "is not SITE=BASE_URL"),
    ("a=ftp://ehr.example", "CDS_SITE_FHIR_SERVERS entry a='ftp://ehr.example' is not an http"),
    ("a=https://ehr.example/fhir,b=https://ehr.example/fhir/", "the same FHIR base for two entries"),
])
def test_a_wrong_site_fhir_servers_setting_stops_the_start(value, message):
    with pytest.raises(ConfigError, match=message):
        Config.from_env({"CDS_SITE_FHIR_SERVERS": value})


def test_the_site_settings_parse():
    config = Config.from_env({"CDS_SITE_FHIR_SERVERS": " a=https://ehr.a.example/fhir/ , b=https://ehr.b.example",
                              "CDS_DEFAULT_SITE": "b", "CDS_SITE_ARTIFACTS": str(EXAMPLE)})
    assert config.site_fhir_servers == (("a", "https://ehr.a.example/fhir"), ("b", "https://ehr.b.example"))
    assert (config.default_site, config.site_artifacts) == ("b", EXAMPLE)


def test_a_site_regimen_link_opens_on_the_service(sited):
    (card,) = at(sited, "example-site", call(orders=(dex_order(day_of(2, 1), dose=40),)))
    urls = [link["url"] for link in card.get("links", [])]
    assert urls and not any(u.startswith(SITE_BASE) for u in urls), urls
    assert any(u.endswith("/regimens") for u in urls), urls
