"""Configuration comes from the environment only, and every variable is documented in the README."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from cds_service.config import SETTINGS, Config
from cds_service.errors import ConfigError

README = Path(__file__).resolve().parent.parent / "README.md"


def test_defaults_are_the_embedded_default():
    config = Config.from_env({})
    assert (config.host, config.port) == ("127.0.0.1", 8080)
    assert config.max_body_bytes == 1_048_576
    assert config.jwt_issuers is None
    # This machine's FHIR servers only (an empty list, which `all()` over it would pass, would refuse every one).
    assert config.allowed_fhir_servers == ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")
    assert config == Config(plan_definitions=config.plan_definitions)


def test_settings_table_and_config_fields_agree():
    assert [s.field for s in SETTINGS] == [f.name for f in fields(Config)]
    defaults = Config.from_env({})
    for f in fields(Config):
        assert getattr(defaults, f.name) == getattr(Config(), f.name), f.name


def test_environment_overrides():
    config = Config.from_env({"HOST": "0.0.0.0", "PORT": "9000",
                              "CDS_ALLOWED_FHIR_SERVERS": "https://ehr.example/fhir/, https://b.example/r4",
                              "CDS_SHOW_NOT_ELIGIBLE": "yes", "CDS_JWT_ISSUERS": "/etc/cds/issuers.json"})
    assert (config.host, config.port) == ("0.0.0.0", 9000)
    assert config.allowed_fhir_servers == ("https://ehr.example/fhir", "https://b.example/r4")
    assert config.show_not_eligible is True
    assert config.jwt_issuers == Path("/etc/cds/issuers.json")


@pytest.mark.parametrize(("cpus", "raw", "workers"), [
    ({1}, "auto", 1),  # pinned to one core: one worker, not two taking turns on it
    ({0, 1}, "auto", 2),
    (set(range(64)), "AUTO", 4),  # each worker holds its own caches: at most MAX_AUTO_WORKERS
    ({0}, "3", 3),  # a number is taken as it is
])
def test_workers_follow_the_cpus_the_process_may_run_on(monkeypatch, cpus, raw, workers):
    from cds_service import config as config_module

    monkeypatch.setattr(config_module.os, "sched_getaffinity", lambda pid: cpus, raising=False)
    assert Config.from_env({"CDS_WORKERS": raw}).workers == workers
    assert Config().workers == min(len(cpus), config_module.MAX_AUTO_WORKERS)


@pytest.mark.parametrize(("env", "name"), [
    ({"PORT": "eighty"}, "PORT"),
    ({"CDS_WORKERS": "several"}, "CDS_WORKERS"),
    ({"PORT": "0"}, "PORT"),
    ({"CDS_MAX_BODY_BYTES": "-1"}, "CDS_MAX_BODY_BYTES"),
    ({"CDS_SHOW_NOT_ELIGIBLE": "perhaps"}, "CDS_SHOW_NOT_ELIGIBLE"),
    ({"CDS_ALLOWED_FHIR_SERVERS": "ftp://x"}, "CDS_ALLOWED_FHIR_SERVERS"),
    ({"CDS_FHIR_RETRIES": "-2"}, "CDS_FHIR_RETRIES"),
])
def test_bad_setting_stops_start_up_naming_the_variable(env, name):
    with pytest.raises(ConfigError, match=name):
        Config.from_env(env)


def test_every_variable_is_documented_once_in_the_readme_table():
    text = README.read_text()
    for setting in SETTINGS:
        rows = [line for line in text.splitlines() if line.startswith(f"| `{setting.env}` |")]
        assert len(rows) == 1, f"{setting.env} must have exactly one row in the README's configuration table"
        assert f"`{setting.default}`" in rows[0] or (not setting.default and "unset" in rows[0]), setting.env


def test_summary_hides_the_salt():
    assert Config(pseudonym_salt="s3cret").summary()["pseudonym_salt"] == "set"
