"""The fhirServer allowlist: exact origin, whole path segments, nothing that can disguise another host."""

from __future__ import annotations

import pytest

from cds_service.config import LOOPBACK_FHIR_SERVERS, Config
from cds_service.errors import CdsError, ConfigError
from cds_service.security.allowlist import check_fhir_server, is_allowed, is_within, relative_to

ALLOWED = ("https://ehr.example/fhir/r4", "http://127.0.0.1:*")


@pytest.mark.parametrize("url", [
    "https://ehr.example/fhir/r4",
    "https://ehr.example/fhir/r4/",
    "https://EHR.example/fhir/r4/Patient/1",
    "https://ehr.example:443/fhir/r4",
    "http://127.0.0.1:8080/fhir",
    "http://127.0.0.1/anything",
])
def test_allowed(url):
    assert is_allowed(url, ALLOWED)


@pytest.mark.parametrize("url", [
    "https://ehr.example/fhir/r40",            # a string prefix, not a path segment
    "https://ehr.example/fhir",                # above the allowed base
    "http://ehr.example/fhir/r4",              # another scheme
    "https://ehr.example:8443/fhir/r4",        # another port
    "https://ehr.example.evil.test/fhir/r4",   # another host
    "https://ehr.example@evil.test/fhir/r4",   # user information hides the real host
    "https://evil.test/fhir/r4#@ehr.example",
    "https://ehr.example/fhir/r4/../../admin",  # dot segments would leave the base on the server
    "https://ehr.example/fhir/r4/%2e%2e/admin",
    "https://ehr.example/fhir%2Fr4",
    "https://ehr.example:notaport/fhir/r4",
    "ftp://ehr.example/fhir/r4",
    "http://localhost:8080/fhir",              # only 127.0.0.1 is in this list
    "",
])
def test_refused(url):
    assert not is_allowed(url, ALLOWED)


def test_the_embedded_default_allows_loopback_on_any_port_and_nothing_else():
    for url in ("http://127.0.0.1:9/fhir", "http://localhost:51234/r4", "http://[::1]:8080/fhir"):
        assert is_allowed(url, LOOPBACK_FHIR_SERVERS), url
    for url in ("http://10.0.0.1/fhir", "https://127.0.0.1/fhir", "http://127.0.0.2/fhir",
                "http://169.254.169.254/latest/meta-data"):
        assert not is_allowed(url, LOOPBACK_FHIR_SERVERS), url


def test_within_a_base_is_the_rule_for_next_links_and_redirects():
    base = "http://127.0.0.1:8080/fhir"
    assert is_within("http://127.0.0.1:8080/fhir/Observation?page=2", base)
    assert not is_within("http://127.0.0.1:8081/fhir/Observation?page=2", base)
    assert not is_within("http://127.0.0.1:8080/other/Observation", base)


def test_check_raises_a_403_naming_the_field_without_echoing_the_url():
    check_fhir_server(None, ALLOWED)
    check_fhir_server("http://127.0.0.1:1/fhir", ALLOWED)
    with pytest.raises(CdsError) as caught:
        check_fhir_server("https://evil.test/fhir?token=abc", ALLOWED)
    assert caught.value.status == 403
    assert caught.value.expression == ("fhirServer",)
    assert "evil.test" not in caught.value.message


def test_an_entry_that_is_not_a_base_url_stops_the_start_up():
    with pytest.raises(ConfigError, match="CDS_ALLOWED_FHIR_SERVERS"):
        Config.from_env({"CDS_ALLOWED_FHIR_SERVERS": "https://user@ehr.example/fhir"})
    assert Config.from_env({"CDS_ALLOWED_FHIR_SERVERS": "https://ehr.example:*/fhir"}).allowed_fhir_servers


def test_relative_to_a_base():
    base = "https://ehr.example/fhir/r4"
    assert relative_to("https://ehr.example:443/fhir/r4/Observation?patient=1&page=2", base) == \
        "Observation?patient=1&page=2"
    assert relative_to("https://ehr.example/fhir/r4/Medication/abc", base) == "Medication/abc"
    assert relative_to("https://ehr.example/fhir/r4", base) == ""
    assert relative_to("https://ehr.example/other/Medication/abc", base) is None
    assert relative_to("https://evil.test/fhir/r4/Medication/abc", base) is None
