"""The regimen pages: what a clinician reads there, cycle by cycle, and that the page is safe to open."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import shutil

import pytest

from cds_service.app import create_app
from cds_service.config import Config
from cds_service.knowledge.model import load_knowledge
from cds_service.published.regimen_page import age_band, day_list
from cds_service.runtime import Runtime
from tests.conftest import FIXED_NOW
from tests.spec import check_operation_outcome

# What the protocol gives, per regimen, written out by hand (not read from the artifacts the page is
# built from): cycle sections in order, and per section each drug with its dose wording and days.
POM = ("Pomalidomide", "4 mg orally once daily", "1–21")
ISA_WEEKLY = ("Isatuximab", "10 mg/kg IV infusion", "1, 8, 15 and 22")
ISA_FORTNIGHTLY = ("Isatuximab", "10 mg/kg IV infusion", "1 and 15")
DEX_ICARIA = ("Dexamethasone", "Under 75: 40 mg orally or IV once on the day", "1, 8, 15 and 22")
DEX_IKEMA = ("Dexamethasone", "20 mg IV on infusion days, orally otherwise", "1, 2, 8, 9, 15, 16, 22 and 23")
K20 = ("Carfilzomib", "20 mg/m² IV", "1 and 2")
K56_C1 = ("Carfilzomib", "56 mg/m² IV", "8, 9, 15 and 16")
K56 = ("Carfilzomib", "56 mg/m² IV", "1, 2, 8, 9, 15 and 16")
ICARIA_C1 = [DEX_ICARIA, ISA_WEEKLY, POM]
IKEMA_C1 = [DEX_IKEMA, ISA_WEEKLY, K20, K56_C1]
REGIMENS = {
    "icaria-arm-a": [("Cycle 1", ICARIA_C1), ("Cycles 2 and later", [DEX_ICARIA, ISA_FORTNIGHTLY, POM])],
    "icaria-arm-b": [("Cycle 1", ICARIA_C1), ("Cycle 2", [DEX_ICARIA, ISA_FORTNIGHTLY, POM]),
                     ("Cycles 3 and later (no dexamethasone)", [ISA_FORTNIGHTLY, POM])],
    "ikema-arm-a": [("Cycle 1", IKEMA_C1), ("Cycles 2 and later", [DEX_IKEMA, ISA_FORTNIGHTLY, K56])],
    "ikema-arm-b": [("Cycle 1", IKEMA_C1), ("Cycle 2", [DEX_IKEMA, ISA_FORTNIGHTLY, K56]),
                    ("Cycles 3 and later (no dexamethasone)", [ISA_FORTNIGHTLY, K56])],
}


def text_of(fragment: str) -> str:
    """A fragment of HTML as the words a reader sees (tags dropped, entities decoded, spaces folded)."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def sections(page: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    found = []
    for section in re.findall(r"<section>(.*?)</section>", page, re.S):
        title = text_of(re.search(r"<h2>(.*?)</h2>", section, re.S).group(1))
        rows = [tuple(text_of(cell) for cell in re.findall(r"<td>(.*?)</td>", row, re.S))
                for row in re.findall(r"<tr><td>.*?</tr>", section, re.S)]
        found.append((title, rows))
    return found


@pytest.mark.parametrize("plan_id", sorted(REGIMENS))
def test_each_regimen_page_shows_its_cycles_drugs_doses_and_days(client, plan_id):
    response = client.get(f"/regimens/{plan_id}")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    shown = sections(page)
    assert [title for title, _ in shown] == [title for title, _ in REGIMENS[plan_id]]
    for (title, rows), (_, expected) in zip(shown, REGIMENS[plan_id], strict=True):
        assert [row[0] for row in rows] == [drug for drug, _, _ in expected], title
        for row, (drug, dose, days) in zip(rows, expected, strict=True):
            assert dose in row[1] and row[2] == days, (title, drug, row)


@pytest.mark.parametrize("plan_id", ["icaria-arm-a", "icaria-arm-b"])
def test_icaria_dexamethasone_shows_both_age_bands(client, plan_id):
    rows = [row for _, rows in sections(client.get(f"/regimens/{plan_id}").get_data(as_text=True))
            for row in rows if row[0] == "Dexamethasone"]
    assert rows
    for row in rows:
        assert "Under 75: 40 mg" in row[1] and "Aged 75 and over: 20 mg" in row[1]


@pytest.mark.parametrize("plan_id", ["icaria-arm-b", "ikema-arm-b"])
def test_arm_b_pages_say_where_dexamethasone_stops(client, plan_id):
    page = client.get(f"/regimens/{plan_id}").get_data(as_text=True)
    banner = text_of(re.search(r'<p class="stop">(.*?)</p>', page, re.S).group(1))
    assert banner == ("Dexamethasone in cycles 1 and 2 only. No dexamethasone from cycle 3 on: cycle 3 begins "
                      "on day 57 counted from cycle 1 day 1.")
    _, last_rows = sections(page)[-1]
    assert "Dexamethasone" not in [row[0] for row in last_rows]
    assert "No dexamethasone in these cycles." in text_of(page)
    assert "Arm B: dexamethasone-free arm" in text_of(page)


@pytest.mark.parametrize("plan_id", ["icaria-arm-a", "ikema-arm-a"])
def test_arm_a_pages_keep_dexamethasone_until_progression(client, plan_id):
    page = client.get(f"/regimens/{plan_id}").get_data(as_text=True)
    assert '<p class="stop">' not in page
    assert "Dexamethasone in every cycle, until disease progression." in text_of(page)
    assert all("Dexamethasone" in [row[0] for row in rows] for _, rows in sections(page))


def test_the_pages_link_to_the_registry_the_json_and_each_other(client, knowledge):
    page = client.get("/regimens/icaria-arm-b").get_data(as_text=True)
    links = set(re.findall(r'href="([^"]+)"', page))
    assert links == {knowledge.study.registry_url, "http://localhost/regimens",
                     "http://localhost/fhir/PlanDefinition/icaria-arm-b"}
    index = client.get("/regimens").get_data(as_text=True)
    listed = re.findall(r'href="http://localhost(/regimens/[^"]+)"', index)
    assert sorted(listed) == sorted(f"/regimens/{p}" for p in REGIMENS)
    for path in {*listed, *(re.sub("^http://localhost", "", u) for u in re.findall(r'href="([^"]+)"', index)
                            if u.startswith("http://localhost"))}:
        assert client.get(path).status_code == 200, path
    assert "Arm A: dexamethasone arm" in text_of(index) and "Arm B: dexamethasone-free arm" in text_of(index)


@pytest.mark.parametrize("path", ["/regimens", "/regimens/ikema-arm-a"])
def test_pages_are_self_contained_under_a_strict_content_security_policy(client, path):
    response = client.get(path)
    page = response.get_data(as_text=True)
    for external in ("<script", "<link", "<img", "<iframe", "src=", "url(", "@import", " style="):
        assert external not in page, external
    policy = dict(part.strip().split(" ", 1) for part in response.headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'" and policy["base-uri"] == "'none'"
    assert policy["form-action"] == "'none'"
    assert "unsafe" not in response.headers["Content-Security-Policy"]
    # The one style allowed is the page's own block, by its hash.
    (style,) = re.findall(r"<style>(.*?)</style>", page, re.S)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert policy["style-src"] == f"'sha256-{digest}'"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/regimens/no-such-regimen", "/regimens/dex-free-arm-b-rule",
                                  "/regimens/nct06561854-protocol", "/regimens/pat-42"])
def test_anything_but_a_regimen_is_a_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    check_operation_outcome(response.get_json())


def test_text_from_the_artifacts_is_escaped(tmp_path, knowledge):
    folder = tmp_path / "plan_definitions"
    shutil.copytree(knowledge.artifacts.folder, folder)
    path = folder / "regimens" / "PlanDefinition-icaria-arm-b.json"
    plan = json.loads(path.read_text())
    plan["title"] = 'ICARIA <script>alert("x")</script> & "arm" B'
    plan["action"][0]["action"][0]["title"] = "Cycle 1 <img src=x onerror=alert(1)>"
    path.write_text(json.dumps(plan))
    runtime = Runtime(config=Config(), knowledge=load_knowledge(folder), clock=lambda: FIXED_NOW)
    page = create_app(runtime=runtime).test_client().get("/regimens/icaria-arm-b").get_data(as_text=True)
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;arm&quot;" in page
    assert "Cycle 1 &lt;img src=x onerror=alert(1)&gt;" in page


@pytest.mark.parametrize(("days", "words"), [
    ((1,), "1"), ((1, 15), "1 and 15"), ((1, 8, 15, 22), "1, 8, 15 and 22"), ((1, 2), "1 and 2"),
    (tuple(range(1, 22)), "1–21"), ((1, 2, 3, 8), "1–3 and 8"), ((22, 1, 2, 8, 9), "1, 2, 8, 9 and 22"),
])
def test_days_are_written_as_a_clinician_writes_them(days, words):
    assert day_list(days) == words


def test_age_bands_in_words(knowledge):
    (icaria_b,) = [r for r in knowledge.regimens if r.key == "ICARIA" and r.arm == "B"]
    options = icaria_b.block(1).drug("dexamethasone").options
    assert sorted(age_band(o) for o in options) == ["aged 75 and over", "under 75"]
