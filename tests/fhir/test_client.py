"""The FHIR client: every failure of a server ends in a clear FhirReadError within the call's deadline."""

from __future__ import annotations

import email.utils
import time

import pytest
import requests
import responses

from cds_service.fhir.client import Deadline, FhirClient, FhirReadError, Target, new_session, retry_after
from tests.fhir.support import BASE, PATIENT, TOKEN, FakeClock, bundle, jbody

QUERY = "Observation?patient=pat-1"
URL = f"{BASE}/{QUERY}"


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def deadline(clock):
    return Deadline.after(4000, clock, clock.sleep)


def client(retries=2, max_pages=20) -> FhirClient:
    return FhirClient(new_session(4), connect_timeout=1.0, read_timeout=3.0, retries=retries, max_pages=max_pages)


TARGET = Target(BASE, TOKEN)


@responses.activate
def test_a_read_sends_the_bearer_token_and_fhir_accept_header(deadline):
    responses.get(f"{BASE}/Patient/pat-1", json=PATIENT)
    assert client().read(TARGET, "Patient/pat-1", deadline) == PATIENT
    sent = responses.calls[0].request.headers
    assert sent["Authorization"] == f"Bearer {TOKEN}"
    assert "application/fhir+json" in sent["Accept"]


@responses.activate
def test_no_token_no_authorization_header(deadline):
    responses.get(f"{BASE}/Patient/pat-1", json=PATIENT)
    client().read(Target(BASE), "Patient/pat-1", deadline)
    assert "Authorization" not in responses.calls[0].request.headers


@responses.activate
def test_paging_follows_next_links_on_the_same_server(deadline):
    responses.get(URL, json=bundle({"resourceType": "Observation", "id": "1"}, next_url=f"{BASE}/Observation?page=2"))
    responses.get(f"{BASE}/Observation?page=2", json=bundle({"resourceType": "Observation", "id": "2"},
                                                           next_url="Observation?page=3"))  # relative link
    responses.get(f"{BASE}/Observation?page=3", json=bundle({"resourceType": "Observation", "id": "3"}))
    found = client().search(TARGET, QUERY, deadline)
    assert [r["id"] for r in found] == ["1", "2", "3"]
    assert all(c.request.headers["Authorization"] == f"Bearer {TOKEN}" for c in responses.calls)


@responses.activate
def test_operation_outcome_entries_of_a_searchset_are_not_data(deadline):
    page = bundle({"resourceType": "Observation", "id": "1"})
    page["entry"].append({"resource": {"resourceType": "OperationOutcome", "issue": []}, "search": {"mode": "outcome"}})
    responses.get(URL, json=page)
    assert [r["resourceType"] for r in client().search(TARGET, QUERY, deadline)] == ["Observation"]


@responses.activate
def test_endless_paging_stops_at_the_cap_as_incomplete(deadline):
    def endless(request):
        page = int(request.params.get("page", "1"))
        return 200, {}, jbody(bundle({"resourceType": "Observation", "id": str(page)},
                                     next_url=f"{BASE}/Observation?page={page + 1}"))
    responses.add_callback(responses.GET, f"{BASE}/Observation", callback=endless)
    with pytest.raises(FhirReadError) as caught:
        client(max_pages=3).search(TARGET, QUERY, deadline)
    assert caught.value.kind == "incomplete"
    assert "CDS_FHIR_MAX_PAGES" in caught.value.reason
    assert len(responses.calls) == 4  # the first page and three next pages, no more


@responses.activate
def test_a_next_link_to_another_server_is_not_followed(deadline):
    responses.get(URL, json=bundle({"resourceType": "Observation", "id": "1"},
                                   next_url="http://evil.test/fhir/Observation?page=2"))
    with pytest.raises(FhirReadError, match="outside fhirServer") as caught:
        client().search(TARGET, QUERY, deadline)
    assert caught.value.kind == "redirect"
    assert len(responses.calls) == 1


@responses.activate
@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_busy_answers_are_retried_with_backoff(status, clock, deadline):
    responses.get(URL, status=status)
    responses.get(URL, status=status)
    responses.get(URL, json=bundle())
    assert client(retries=2).search(TARGET, QUERY, deadline) == []
    assert len(responses.calls) == 3
    assert clock.slept == [0.1, 0.2]


@responses.activate
def test_retry_after_seconds_is_honoured(clock, deadline):
    responses.get(URL, status=429, headers={"Retry-After": "2"})
    responses.get(URL, json=bundle())
    client().search(TARGET, QUERY, deadline)
    assert clock.slept == [2.0]


@responses.activate
def test_retry_after_beyond_the_deadline_gives_up_at_once(clock, deadline):
    responses.get(URL, status=503, headers={"Retry-After": "30"})
    with pytest.raises(FhirReadError) as caught:
        client().search(TARGET, QUERY, deadline)
    assert caught.value.kind == "deadline" and caught.value.status == 503
    assert clock.slept == []
    assert len(responses.calls) == 1


@responses.activate
def test_retries_are_bounded(clock, deadline):
    responses.get(URL, status=503)
    with pytest.raises(FhirReadError, match="503 after 3 tries") as caught:
        client(retries=2).search(TARGET, QUERY, deadline)
    assert caught.value.kind == "busy"
    assert len(responses.calls) == 3


@responses.activate
@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_is_not_retried(status, deadline):
    responses.get(URL, status=status, json={"resourceType": "OperationOutcome", "issue": []})
    with pytest.raises(FhirReadError, match=f"refused the access token \\({status}\\)") as caught:
        client().search(TARGET, QUERY, deadline)
    assert caught.value.kind == "refused"
    assert len(responses.calls) == 1


@responses.activate
def test_not_found(deadline):
    responses.get(f"{BASE}/Patient/pat-1", status=404, json={"resourceType": "OperationOutcome", "issue": []})
    with pytest.raises(FhirReadError) as caught:
        client().read(TARGET, "Patient/pat-1", deadline)
    assert caught.value.kind == "not-found"


@responses.activate
def test_a_read_timeout_is_final_and_says_so(deadline):
    responses.get(URL, body=requests.ReadTimeout("slow"))
    with pytest.raises(FhirReadError, match="CDS_FHIR_READ_TIMEOUT") as caught:
        client().search(TARGET, QUERY, deadline)
    assert caught.value.kind == "unreachable"
    assert len(responses.calls) == 1


@responses.activate
def test_connection_refused_is_retried_then_unreachable(clock, deadline):
    responses.get(URL, body=requests.ConnectionError("refused"))
    with pytest.raises(FhirReadError, match="could not be reached") as caught:
        client(retries=2).search(TARGET, QUERY, deadline)
    assert caught.value.kind == "unreachable"
    assert len(responses.calls) == 3
    assert clock.slept == [0.1, 0.2]


@responses.activate
def test_html_instead_of_json(deadline):
    responses.get(URL, body="<html><body>Login</body></html>", content_type="text/html")
    with pytest.raises(FhirReadError, match="HTML") as caught:
        client().search(TARGET, QUERY, deadline)
    assert caught.value.kind == "invalid"


@responses.activate
def test_truncated_json(deadline):
    responses.get(URL, body='{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Obs',
                  content_type="application/fhir+json")
    with pytest.raises(FhirReadError, match="not valid JSON") as caught:
        client().search(TARGET, QUERY, deadline)
    assert caught.value.kind == "invalid"


@responses.activate
@pytest.mark.parametrize("body", ["[]", '"text"', '{"no": "resourceType"}'])
def test_json_that_is_not_a_resource(deadline, body):
    responses.get(URL, body=body, content_type="application/json")
    with pytest.raises(FhirReadError, match="not a FHIR resource"):
        client().search(TARGET, QUERY, deadline)


@responses.activate
def test_an_operation_outcome_with_200_is_not_data(deadline):
    responses.get(URL, json={"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "x"}]})
    with pytest.raises(FhirReadError, match="OperationOutcome"):
        client().search(TARGET, QUERY, deadline)


@responses.activate
def test_a_search_answered_with_another_resource_type(deadline):
    responses.get(URL, json=PATIENT)
    with pytest.raises(FhirReadError, match="other than a Bundle"):
        client().search(TARGET, QUERY, deadline)


@responses.activate
def test_a_redirect_off_the_server_is_not_followed(deadline):
    responses.get(URL, status=302, headers={"Location": "http://evil.test/steal"})
    with pytest.raises(FhirReadError, match="redirected outside fhirServer") as caught:
        client().search(TARGET, QUERY, deadline)
    assert caught.value.kind == "redirect"
    assert [c.request.url for c in responses.calls] == [URL]


@responses.activate
def test_a_redirect_within_the_server_is_followed_with_the_token(deadline):
    moved = f"{BASE}/Observation?patient=pat-1&moved=1"
    responses.get(URL, status=301, headers={"Location": moved})
    responses.get(moved, json=bundle({"resourceType": "Observation", "id": "1"}))
    assert len(client().search(TARGET, QUERY, deadline)) == 1
    assert responses.calls[1].request.headers["Authorization"] == f"Bearer {TOKEN}"


@responses.activate
def test_redirect_loops_end(deadline):
    responses.get(URL, status=307, headers={"Location": URL})
    with pytest.raises(FhirReadError, match="too many times"):
        client().search(TARGET, QUERY, deadline)
    assert len(responses.calls) == 4


@responses.activate
def test_a_spent_deadline_makes_no_request(clock, deadline):
    responses.get(URL, json=bundle())
    clock.advance(4.0)
    with pytest.raises(FhirReadError, match="CDS_CALL_DEADLINE_MS") as caught:
        client().search(TARGET, QUERY, deadline)
    assert caught.value.kind == "deadline"
    assert len(responses.calls) == 0


@responses.activate
def test_timeouts_shrink_to_what_is_left_of_the_deadline(clock, deadline):
    responses.get(URL, json=bundle())
    clock.advance(3.5)
    client().search(TARGET, QUERY, deadline)
    connect, read = responses.calls[0].request.req_kwargs["timeout"]
    assert connect == pytest.approx(0.5) and read == pytest.approx(0.5)


@responses.activate
def test_a_slow_page_past_the_deadline_ends_the_search(clock, deadline):
    def slow_first_page(request):
        clock.advance(5.0)
        return 200, {}, jbody(bundle({"resourceType": "Observation", "id": "1"}, next_url=f"{BASE}/Observation?page=2"))
    responses.add_callback(responses.GET, URL, callback=slow_first_page)
    with pytest.raises(FhirReadError) as caught:
        client().search(TARGET, QUERY, deadline)
    assert caught.value.kind == "deadline"
    assert len(responses.calls) == 1


@responses.activate
def test_cookies_are_never_kept_between_reads(deadline):
    # One session serves every call and token: a cookie from one answer must not ride on the next.
    shared = client()
    responses.get(f"{BASE}/Patient/pat-1", json=PATIENT, headers={"Set-Cookie": "sid=abc; Path=/"})
    shared.read(TARGET, "Patient/pat-1", deadline)
    shared.read(Target(BASE, "another-token"), "Patient/pat-1", deadline)
    assert "Cookie" not in responses.calls[1].request.headers
    assert len(shared.session.cookies) == 0
    assert shared.session.trust_env is False


def test_retry_after_forms():
    assert retry_after("5") == 5.0
    assert retry_after(None) is None
    assert retry_after("soon") is None
    assert retry_after("-1") is None
    now = time.time()
    later = email.utils.formatdate(now + 60, usegmt=True)
    assert 55 <= retry_after(later, now=lambda: now) <= 60


@responses.activate
def test_a_token_that_cannot_be_a_header_is_refused_without_a_request(deadline):
    responses.get(URL, json=bundle())
    with pytest.raises(FhirReadError, match="cannot be sent") as caught:
        client().search(Target(BASE, "abc\r\nX-Injected: 1"), QUERY, deadline)
    assert caught.value.kind == "refused"
    assert len(responses.calls) == 0
