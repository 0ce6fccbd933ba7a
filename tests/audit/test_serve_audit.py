"""End to end through the real server: `cds-service serve` (gunicorn, 2 workers, the real services) records
the cards and the feedback in the store named by CDS_DATABASE_URL, and `cds-service report` reads them back.

The hook call is the standard arm B patient of tests/rules/scenario.py ordering dexamethasone in cycle 4:
the real rules answer with the arm B warning; patient-view gives the trial-status card."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import requests
from sqlalchemy import create_engine, select

from cds_service.audit import schema
from cds_service.audit.engine import parse_database_url
from tests.rules.scenario import call, day_of, dex_order
from tests.servers import REPO, cds_service

pytestmark = pytest.mark.integration

SERVICE = "dex-free-order-sign"
SUBJECT_ID = "DXF-0042"  # the scenario's ResearchSubject.identifier


def hook_request():
    return call(orders=(dex_order(day_of(4, 1)),))
COMMENT = "Premedication agreed with the investigator"


def test_served_calls_and_feedback_are_recorded_and_reported(database_url):
    env = {"CDS_DATABASE_URL": database_url, "CDS_WORKERS": "2"}
    with cds_service(env=env) as (base, log):
        response = requests.post(f"{base}/cds-services/{SERVICE}", json=hook_request(), timeout=10)
        assert response.status_code == 200, response.text
        (warning,) = response.json()["cards"]
        view = requests.post(f"{base}/cds-services/dex-free-patient-view", json=call("patient-view"), timeout=10)
        (info,) = view.json()["cards"]
        feedback = {"feedback": [
            {"card": warning["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-24T10:05:31Z",
             "overrideReason": {"reason": warning["overrideReasons"][0], "userComment": COMMENT}},
            {"card": info["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-11-24T10:06:00Z"},
        ]}
        url = f"{base}/cds-services/{SERVICE}/feedback"
        # (The other worker may not have written the cards yet: unknownCards is not asserted here.)
        assert requests.post(url, json=feedback, timeout=10).json()["stored"] == 2
        # The EHR sends it again (to either worker): stored once.
        assert requests.post(url, json=feedback, timeout=10).json()["duplicates"] == 2
        unknown = {"feedback": [{"card": "not-ours", "outcome": "accepted", "outcomeTimestamp": "2026-11-24T10:07:00Z"}]}
        assert requests.post(url, json=unknown, timeout=10).json()["unknownCards"] == 1
        audit = requests.get(f"{base}/healthz", timeout=5).json()["features"]["audit"]
        assert audit["store"] == database_url.split(":")[0].split("+")[0] and audit["cardsLost"] == 0
        # Cards of the last calls before the stop are written when the workers exit.
        for _ in range(5):
            assert requests.post(f"{base}/cds-services/{SERVICE}", json=hook_request(), timeout=10).ok
    server_log = "".join(log)

    result = subprocess.run([sys.executable, "-m", "cds_service.cli", "report", "--format", "json"], cwd=REPO,
                            env={**os.environ, "CDS_DATABASE_URL": database_url}, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["totals"] == {"shown": 7, "accepted": 1, "overridden": 1, "noFeedback": 5}
    assert report["feedbackForUnknownCards"] == 1
    # Every arm B warning: the overridden one first, then the five no EHR answered for.
    deviation, *silent = report["potentialDeviations"]
    assert (deviation["studySubjectId"], deviation["cycle"], deviation["reason"]["code"], deviation["comment"]) == (
        SUBJECT_ID, 4, "premedication-isatuximab", COMMENT)
    assert deviation["reason"]["display"] == warning["overrideReasons"][0]["display"]
    assert [(d["outcome"], d["orderDate"]) for d in silent] == [("noFeedback", day_of(4, 1).isoformat())] * 5
    assert {(c["rule"], c["shown"]) for c in report["counts"]} == {("dex-after-cycle-2", 6), ("trial-status", 1)}
    # Neither the server's log nor the report's messages carry patient data or the comment.
    for private in (SUBJECT_ID, "pat-42", COMMENT):
        assert private not in server_log and private not in result.stderr
    assert "audit store ready" in server_log
    # Feedback that overtook its card was flagged unknown, and is no longer once the card is written.
    engine = create_engine(parse_database_url(database_url))
    with engine.connect() as connection:
        flags = dict(connection.execute(select(schema.feedback.c.card_uuid, schema.feedback.c.card_known)).all())
    engine.dispose()
    assert flags == {warning["uuid"]: True, info["uuid"]: True, "not-ours": False}
