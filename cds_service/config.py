"""Configuration from environment variables only; every variable is declared once, here."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from cds_service.errors import ConfigError
from cds_service.security.allowlist import parse_entry, parse_origin
from cds_service.security.urls import redact_url

REPO_ROOT = Path(__file__).resolve().parent.parent

# The embedded default lets the service call FHIR servers on this machine only (any port): an address
# it is handed in a request must never steer it at other hosts unless an operator allowed that host.
LOOPBACK_FHIR_SERVERS = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")


def _int(raw: str) -> int:
    return int(raw)


# `CDS_WORKERS=auto` (the default) takes one worker per CPU the process may run on, up to this many: each
# worker holds its own parse, part and clock caches.
MAX_AUTO_WORKERS = 4


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity: a pinned or cpuset-limited process has fewer)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _workers(raw: str) -> int:
    # Two workers on one core took a fifth more CPU per hook call than one under load (their caches and
    # the core's take turns: bench/README.md, "Hook latency"): one per usable CPU.
    if raw.strip().lower() == "auto":
        return max(1, min(usable_cpus(), MAX_AUTO_WORKERS))
    return int(raw)


def _float(raw: str) -> float:
    return float(raw)


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _list(raw: str) -> tuple[str, ...]:
    return tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())


def _repo_path(raw: str) -> Path:
    # Relative to the repository, so `make run` finds the artifacts from any working directory.
    return REPO_ROOT / Path(raw).expanduser()


def _optional_bool(raw: str) -> bool | None:
    return _bool(raw) if raw else None


def _optional_str(raw: str) -> str | None:
    return raw or None


def _canonical_base(raw: str) -> str | None:
    base = raw.rstrip("/")
    if not base:
        return None  # the base the artifacts' files are written under (knowledge/artifacts.py SOURCE_BASE)
    # It is written into URLs, JSON and CQL strings: no quote, backslash, space or angle bracket.
    if not base.startswith(("https://", "http://", "urn:")) or any(c in base for c in "\"'\\ <>"):
        raise ValueError("expected an absolute URL (https://…, or urn:…)")
    return base


def _optional_path(raw: str) -> Path | None:
    return Path(raw).expanduser() if raw else None


def _site_servers(raw: str) -> tuple[tuple[str, str], ...]:
    """`SITE=URL,SITE=URL` as (site, base URL) pairs."""
    pairs = []
    for part in (p.strip() for p in raw.split(",") if p.strip()):
        site, sep, url = part.partition("=")
        if not sep or not site.strip() or not url.strip():
            raise ValueError(f"{part!r} is not SITE=BASE_URL")
        pairs.append((site.strip(), url.strip().rstrip("/")))
    return tuple(pairs)


def _is_network(raw: str) -> bool:
    try:
        ipaddress.ip_network(raw, strict=False)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, default (as the text an operator would write) and meaning."""

    field: str
    env: str
    default: str
    parse: Callable[[str], Any]
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("host", "HOST", "127.0.0.1", str, "Address the service listens on."),
    Setting("port", "PORT", "8080", _int, "Port the service listens on."),
    Setting("workers", "CDS_WORKERS", "auto", _workers,
            f"gunicorn worker processes; `auto`: one per CPU the process may run on, at most "
            f"{MAX_AUTO_WORKERS}."),
    Setting("threads", "CDS_THREADS", "4", _int, "Threads per gunicorn worker."),
    Setting("log_level", "CDS_LOG_LEVEL", "INFO", str, "Log level (logs are JSON lines on stderr)."),
    Setting("base_url", "CDS_BASE_URL", "", _optional_str,
            "Public base URL of the service when it runs behind a proxy; the JWT `aud` is checked "
            "against it. Unset: the URL of the request as received."),
    Setting("cors_origins", "CDS_CORS_ORIGINS", "*", _list,
            "Browser origins allowed by CORS, comma-separated; `*` allows any (no cookies are used)."),
    Setting("max_body_bytes", "CDS_MAX_BODY_BYTES", "1048576", _int,
            "Largest request body accepted (413 above)."),
    Setting("max_resources", "CDS_MAX_RESOURCES", "5000", _int,
            "Most FHIR resources accepted in one request's prefetch and draftOrders together (413 above)."),
    Setting("allowed_fhir_servers", "CDS_ALLOWED_FHIR_SERVERS", ",".join(LOOPBACK_FHIR_SERVERS), _list,
            "FHIR server base URLs the service may call, comma-separated: scheme, host and port must match "
            "exactly (`:*` allows any port), then the path as a prefix of whole segments; a request naming "
            "another server gets 403. The default allows loopback only."),
    Setting("fhir_connect_timeout", "CDS_FHIR_CONNECT_TIMEOUT", "1.0", _float,
            "Seconds to wait for a connection to the FHIR server."),
    Setting("fhir_read_timeout", "CDS_FHIR_READ_TIMEOUT", "3.0", _float,
            "Seconds to wait for a FHIR server's answer to one request."),
    Setting("fhir_retries", "CDS_FHIR_RETRIES", "2", _int,
            "Retries of one FHIR read on 429/502/503/504 or a dropped connection, with backoff."),
    Setting("fhir_max_pages", "CDS_FHIR_MAX_PAGES", "20", _int,
            "Most `next` pages followed for one FHIR search."),
    Setting("call_deadline_ms", "CDS_CALL_DEADLINE_MS", "4000", _int,
            "Time budget of one hook call for all its FHIR reads together; past it the call answers 412."),
    Setting("cache_ttl_seconds", "CDS_CACHE_TTL_SECONDS", "120", _int,
            "How long a FHIR read is reused (per server, query and access token)."),
    Setting("cache_size", "CDS_CACHE_SIZE", "2048", _int, "Most FHIR reads kept in the cache."),
    Setting("parse_cache_size", "CDS_PARSE_CACHE_SIZE", "4096", _int,
            "Most validated FHIR resources remembered by content (a history sent again with every hook "
            "call is validated once)."),
    Setting("jwt_issuers", "CDS_JWT_ISSUERS", "", _optional_path,
            "JSON file of trusted CDS clients (issuers, JWKS, jku, tenants). Unset: the service runs "
            "OPEN, accepting any caller — for local use only; it says so at start and in /healthz."),
    Setting("jwt_leeway_seconds", "CDS_JWT_LEEWAY_SECONDS", "30", _int,
            "Clock skew tolerated on JWT `exp`/`iat`/`nbf`."),
    Setting("redis_url", "CDS_REDIS_URL", "", _optional_str,
            "Redis for the JWT replay store (`redis://host:6379/0`), shared by every worker and replica; "
            "checked at start. Unset: the CDS_REPLAY_DB file."),
    Setting("replay_db", "CDS_REPLAY_DB", "var/dexfree-replay.sqlite3", str,
            "SQLite file of the JWT ids already seen (relative to the working directory), shared by the "
            "workers of one host, when CDS_REDIS_URL is unset; `:memory:` keeps them per process."),
    Setting("database_url", "CDS_DATABASE_URL", "sqlite:///var/dexfree-audit.sqlite3", str,
            "Audit store: `sqlite:///path` (relative to the working directory) or "
            "`postgresql://…` for several replicas."),
    Setting("pseudonym_salt", "CDS_PSEUDONYM_SALT", "", _optional_str,
            "Secret salt for pseudonymous patient keys in logs and audit. Unset: a random salt kept in "
            "the audit store."),
    Setting("plan_definitions", "CDS_PLAN_DEFINITIONS", "plan_definitions", _repo_path,
            "Folder of the trial's FHIR artifacts (the source of every protocol number and code); "
            "a relative path is taken from the repository root."),
    Setting("local_valuesets", "CDS_LOCAL_VALUESETS", "", _optional_path,
            "Extra site ValueSet file (JSON) adding local codes, e.g. the site's own drug codes."),
    Setting("site_artifacts", "CDS_SITE_ARTIFACTS", "", _optional_path,
            "Folder of site adaptations of the regimens (PlanDefinitions derived from the published ones, "
            "and their ActivityDefinitions), checked at start like CDS_PLAN_DEFINITIONS. Unset: no site "
            "adapts a regimen."),
    Setting("site_fhir_servers", "CDS_SITE_FHIR_SERVERS", "", _site_servers,
            "Which site a call belongs to by its `fhirServer`, when the caller's JWT tenant does not say: "
            "comma-separated `SITE=BASE_URL` (the longest matching base wins, whole path segments)."),
    Setting("default_site", "CDS_DEFAULT_SITE", "", _optional_str,
            "The site of a call neither its JWT tenant nor its fhirServer names. Unset: the published "
            "regimens."),
    Setting("canonical_base", "CDS_CANONICAL_BASE", "", _canonical_base,
            "Canonical base under which the trial's artifacts are published and named: their `url`s, the "
            "CarePlans' instantiatesCanonical matched, cards' `source` and links, discovery, `publish`. "
            "Unset: the files' own base, https://dexfree.example.org/fhir, a reserved example domain: a "
            "deployment sets its own."),
    Setting("timezone", "CDS_TIMEZONE", "Europe/Paris", str,
            "Time zone of the patients' calendar, used to turn instants into cycle days."),
    Setting("show_not_eligible", "CDS_SHOW_NOT_ELIGIBLE", "false", _bool,
            "Show a patient-view card to patients decisively not eligible (default: no card)."),
    Setting("ecog_window_days", "CDS_ECOG_WINDOW_DAYS", "90", _int,
            "An ECOG observation older than this many days does not count for inclusion criterion I5."),
    Setting("preview", "CDS_PREVIEW", "", _optional_bool,
            "The card preview page at `/` and its demo FHIR endpoint (`/demo/fhir`), made-up demo patients "
            "only. Unset: on when CDS_JWT_ISSUERS is unset, off when it is set; `true` or `false` decides."),
    Setting("metrics_allow", "CDS_METRICS_ALLOW", "127.0.0.1/32,::1/128", _list,
            "Client networks (CIDR, comma-separated) allowed to read GET /metrics; `*` allows any. "
            "Others get 403."),
    Setting("metrics_dir", "PROMETHEUS_MULTIPROC_DIR", "", _optional_path,
            "Folder of the metrics files shared by gunicorn's workers, emptied at each start (give each "
            "service instance its own). Unset: `cds-service serve` makes a temporary one per start."),
)


@dataclass(frozen=True)
class Config:
    """The service's settings; build it with `Config.from_env()` (or with keywords in tests)."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = field(default_factory=lambda: _workers("auto"))
    threads: int = 4
    log_level: str = "INFO"
    base_url: str | None = None
    cors_origins: tuple[str, ...] = ("*",)
    max_body_bytes: int = 1_048_576
    max_resources: int = 5000
    allowed_fhir_servers: tuple[str, ...] = LOOPBACK_FHIR_SERVERS
    fhir_connect_timeout: float = 1.0
    fhir_read_timeout: float = 3.0
    fhir_retries: int = 2
    fhir_max_pages: int = 20
    call_deadline_ms: int = 4000
    cache_ttl_seconds: int = 120
    cache_size: int = 2048
    parse_cache_size: int = 4096
    jwt_issuers: Path | None = None
    jwt_leeway_seconds: int = 30
    redis_url: str | None = None
    replay_db: str = "var/dexfree-replay.sqlite3"
    database_url: str = "sqlite:///var/dexfree-audit.sqlite3"
    pseudonym_salt: str | None = None
    plan_definitions: Path = REPO_ROOT / "plan_definitions"
    local_valuesets: Path | None = None
    site_artifacts: Path | None = None
    site_fhir_servers: tuple[tuple[str, str], ...] = ()
    default_site: str | None = None
    canonical_base: str | None = None
    timezone: str = "Europe/Paris"
    show_not_eligible: bool = False
    ecog_window_days: int = 90
    preview: bool | None = None
    metrics_allow: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    metrics_dir: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Read every setting from the environment; a value that does not parse stops the start-up."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            raw = environ.get(setting.env, setting.default)
            try:
                values[setting.field] = setting.parse(raw.strip())
            except ValueError as exc:
                raise ConfigError(f"{setting.env}={raw!r} is not valid: {exc}") from None
        config = cls(**values)
        config.check()
        return config

    def check(self) -> None:
        """Refuse settings that cannot work, with the variable to fix."""
        positive = {
            "PORT": self.port, "CDS_WORKERS": self.workers, "CDS_THREADS": self.threads,
            "CDS_MAX_BODY_BYTES": self.max_body_bytes, "CDS_MAX_RESOURCES": self.max_resources,
            "CDS_FHIR_MAX_PAGES": self.fhir_max_pages, "CDS_CALL_DEADLINE_MS": self.call_deadline_ms,
            "CDS_CACHE_SIZE": self.cache_size, "CDS_PARSE_CACHE_SIZE": self.parse_cache_size,
        }
        for env, value in positive.items():
            if value <= 0:
                raise ConfigError(f"{env} must be greater than 0, not {value}")
        if self.fhir_retries < 0 or self.cache_ttl_seconds < 0 or self.jwt_leeway_seconds < 0:
            raise ConfigError(
                "CDS_FHIR_RETRIES, CDS_CACHE_TTL_SECONDS and CDS_JWT_LEEWAY_SECONDS cannot be negative")
        for server in self.allowed_fhir_servers:
            if not server.startswith(("http://", "https://")) or parse_entry(server) is None:
                raise ConfigError(f"CDS_ALLOWED_FHIR_SERVERS entry {server!r} is not an http(s) base URL")
        for site, server in self.site_fhir_servers:
            if parse_origin(server) is None:
                raise ConfigError(f"CDS_SITE_FHIR_SERVERS entry {site}={server!r} is not an http(s) base URL")
        bases = [parse_origin(server) for _, server in self.site_fhir_servers]
        if len(set(bases)) != len(bases):
            raise ConfigError("CDS_SITE_FHIR_SERVERS names the same FHIR base for two entries")
        for network in self.metrics_allow:
            if network != "*" and not _is_network(network):
                raise ConfigError(f"CDS_METRICS_ALLOW entry {network!r} is not a network (CIDR) or `*`")

    @property
    def preview_on(self) -> bool:
        """Whether the preview page is served: CDS_PREVIEW if set, else only when the service is open."""
        return self.preview if self.preview is not None else self.jwt_issuers is None

    def summary(self) -> dict[str, Any]:
        """The settings in force, for the start-up log (no secret values)."""
        shown: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "pseudonym_salt":
                value = "set" if value else "unset (random, kept in the audit store)"
            elif f.name == "redis_url" and value:
                value = redact_url(value)
            elif isinstance(value, Path):
                value = str(value)
            shown[f.name] = value
        return shown

