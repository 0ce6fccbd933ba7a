"""The preview page in a real browser: Debian's chromium driven by playwright-core (tests/browser/run.mjs).

The module installs what it needs (chromium from Debian's packages when /usr/bin/chromium is missing,
`npm ci` here), starts the real service (gunicorn) with a SQLite audit file in a temporary folder, runs
the node script once, and asserts on what it saw; feedback is read back with `cds-service report`.
Screenshots of every step are kept under tests/artifacts/browser/ (not committed). Without chromium the
tests skip saying why, or fail when CI is set.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.servers import REPO, cds_service, require

HERE = Path(__file__).resolve().parent
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "tests" / "artifacts" / "browser"
ARM_B_WARNING = "dex-after-cycle-2"


def _require(condition: bool, reason: str) -> None:
    """The shared rule for real parts: skip with the reason locally, fail when CI is set."""
    if not condition:
        require("the browser (Debian's chromium with playwright-core)", reason)


def _install_chromium() -> str | None:
    """Install Debian's chromium if it is missing; None when it is there, else why it could not be had."""
    if CHROMIUM.exists():
        return None
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        return "/usr/bin/chromium is missing and apt-get cannot install it here (not root, or no apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    for command in ([apt, *lock, "update", "-qq"], [apt, *lock, "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
        if done.returncode != 0:
            return f"`{' '.join(command)}` failed: {done.stderr.strip()[-300:]}"
    return None if CHROMIUM.exists() else "chromium installed but /usr/bin/chromium is missing"


def _install_playwright() -> str | None:
    if (HERE / "node_modules" / "playwright-core").is_dir():
        return None
    npm = shutil.which("npm")
    if npm is None:
        return "npm is missing: playwright-core cannot be installed"
    done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE,
                          capture_output=True, text=True, timeout=600)
    return None if done.returncode == 0 else f"npm ci in tests/browser failed: {done.stderr.strip()[-300:]}"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict[str, Any]:
    node = shutil.which("node")
    _require(node is not None, "node is missing")
    for problem in (_install_chromium(), _install_playwright()):
        _require(problem is None, problem or "")
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    audit = tmp_path_factory.mktemp("browser-audit") / "audit.sqlite3"
    database = f"sqlite:///{audit}"
    env = {"CDS_DATABASE_URL": database, "CDS_JWT_ISSUERS": "", "CDS_PREVIEW": ""}
    started = time.monotonic()
    with cds_service(env) as (base, _log):
        done = subprocess.run([node, str(HERE / "run.mjs"), "--base", base, "--out", str(ARTIFACTS),
                               "--chromium", str(CHROMIUM)], cwd=HERE, capture_output=True, text=True,
                              timeout=300)
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    # Read after the service stopped: its card rows are written out at exit; feedback was written at once.
    report = subprocess.run([sys.executable, "-m", "cds_service.cli", "report", "--format", "json"], cwd=REPO,
                            env={**os.environ, "CDS_DATABASE_URL": database}, capture_output=True, text=True,
                            timeout=120)
    assert report.returncode == 0, report.stderr[-2000:]
    result["report"] = json.loads(report.stdout)
    result["seconds"] = seconds
    print(f"browser tests: service and chromium run took {seconds:.1f} s")
    return result


def step(run: dict[str, Any], name: str) -> dict[str, Any]:
    if name not in run["steps"]:
        pytest.fail(f"the browser run stopped before step {name!r}: {run.get('error', 'no error reported')}")
    return run["steps"][name]


def warnings(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in cards if c["indicator"] == "warning"]


def test_page_opens_under_its_content_security_policy(run):
    opened = step(run, "open")
    assert opened["status"] == 200
    assert "default-src 'none'" in opened["csp"] and "script-src 'self'" in opened["csp"]
    assert opened["patients"] >= 20


def test_arm_b_cycle_3_order_warns_while_written_and_at_sign(run):
    assert [c["rule"] for c in warnings(step(run, "armBSelect")["cards"])] == [ARM_B_WARNING]
    signed = step(run, "armBSign")
    warning = warnings(signed["cards"])
    assert [c["rule"] for c in warning] == [ARM_B_WARNING]
    assert warning[0]["suggestions"] and warning[0]["overrideReasons"] >= 1
    assert warning[0]["hasDetail"] and warning[0]["hasSource"] and warning[0]["links"]
    assert ARM_B_WARNING in signed["rawRules"]  # the raw response, opened in the page's call log
    assert signed["requestHook"] == "order-sign" and signed["draftIds"]
    assert {"patient", "researchSubjects", "carePlans"} <= set(signed["prefetchKeys"])
    assert [c["rule"] for c in signed["patientCards"]] == ["trial-status"]


def test_the_suggestion_removes_the_order_and_signing_again_warns_no_more(run):
    applied = step(run, "suggestion")
    assert applied["draftAfter"] == "" and applied["feedback"] == "sent"
    again = step(run, "signAgain")
    assert again["draftEntries"] == 0
    assert warnings(again["cards"]) == []


def test_dismissing_with_a_reason_stores_the_feedback(run):
    dismissed = step(run, "dismiss")
    assert dismissed["feedback"] == "sent" and dismissed["dismissed"]
    deviations = [d for d in run["report"]["potentialDeviations"] if d["cardUuid"] == dismissed["uuid"]]
    assert len(deviations) == 1
    assert deviations[0]["rule"] == ARM_B_WARNING
    assert deviations[0]["reason"]["display"] == dismissed["reason"]
    assert deviations[0]["comment"] == "browser test override"
    accepted = sum(row["accepted"] for row in run["report"]["counts"] if row["rule"] == ARM_B_WARNING)
    assert accepted == 1  # the suggestion clicked earlier


def test_arm_a_order_shows_no_warning(run):
    arm_a = step(run, "armA")
    assert warnings(arm_a["cards"]) == [] and ARM_B_WARNING not in arm_a["rawRules"]
    assert [c["rule"] for c in arm_a["patientCards"]] == ["trial-status"]


def test_candidate_patient_view_shows_the_eligibility_card(run):
    cards = step(run, "candidate")["cards"]
    assert [(c["indicator"], c["rule"]) for c in cards] == [("info", "eligibility")]


def test_card_markdown_and_markup_render_as_text(run):
    rendered = step(run, "renderer")
    assert rendered["pwned"] is None and rendered["scripts"] == 0
    assert not {"script", "img", "b", "i", "u", "iframe"} & set(rendered["elements"])
    assert "<script>" in rendered["summaryText"] and "<script>" in rendered["detailText"]
    assert "<img src=x" in rendered["detailText"]
    assert rendered["bold"] == "Bold" and rendered["listItems"] == 2
    assert rendered["tableCells"] == ["I1 | adult", "<i>met</i>"]
    assert rendered["anchors"] == ["https://example.org/x"]  # javascript: links lose their target


def test_no_console_errors_and_a_screenshot_of_every_step(run):
    assert run.get("error") is None
    assert run["console"] == [] and run["pageErrors"] == [] and run["failedRequests"] == []
    assert len(run["screenshots"]) >= 8 and all(Path(p).is_file() for p in run["screenshots"])
