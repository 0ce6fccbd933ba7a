"""HTTP routes: parse, call the runtime, serialize. CORS, error bodies and request logs live here too."""

from __future__ import annotations

import functools
import logging
import time
import uuid
from typing import Any

from flask import Flask, Request, Response, g, request
from werkzeug.exceptions import HTTPException
from werkzeug.sansio.utils import get_current_url

from cds_service import jsonio
from cds_service.audit.store import open_audit_store
from cds_service.config import Config
from cds_service.errors import CdsError, operation_outcome
from cds_service.hooks.body import read_hook_body
from cds_service.hooks.request import read_json_body, read_limited
from cds_service.knowledge.model import shared_knowledge
from cds_service.logs import configure_logging, log_event
from cds_service.ops import metrics, routes
from cds_service.preview.routes import register_preview
from cds_service.published import fhir_api, regimen_page
from cds_service.runtime import Runtime
from cds_service.security.caller import ANONYMOUS
from cds_service.security.jwt_auth import build_authenticator
from cds_service.security.pseudonym import pseudonymizer

log = logging.getLogger(__name__)

# HTTP errors raised by Flask itself, as FHIR issue codes.
_HTTP_ISSUE_CODES = {404: "not-found", 405: "not-supported", 413: "too-costly", 415: "not-supported"}
# Routes answered without authentication: the published artifacts and regimen pages, never patient data.
_FHIR_ENDPOINTS = frozenset({"fhir_metadata", "fhir_search", "fhir_read"})
PUBLIC_ENDPOINTS = _FHIR_ENDPOINTS | {"regimen_index", "regimen_detail"}
# Public routes take every method so that a write is a 405 OperationOutcome, not an authentication error.
_ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def create_app(config: Config | None = None, runtime: Runtime | None = None) -> Flask:
    """The WSGI application; gunicorn calls it with no arguments (configuration from the environment)."""
    if runtime is None:
        config = config or Config.from_env()
        configure_logging(config.log_level)
        runtime = build_runtime(config)
        runtime.log_start()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = runtime.config.max_body_bytes
    app.json.sort_keys = False
    app.extensions["cds_runtime"] = runtime
    _routes(app, runtime)
    # The preview page and its demo FHIR endpoint (`/`, `/preview/*`, `/demo/*`), when turned on.
    register_preview(app, runtime)
    routes.register(app, runtime)
    _hooks(app, runtime)
    return app


def build_runtime(config: Config) -> Runtime:
    """The production wiring: every part built from the configuration, failing fast if one is wrong."""
    knowledge = shared_knowledge(config.plan_definitions, config.local_valuesets, config.site_artifacts,
                                 config.canonical_base)
    audit = open_audit_store(config)
    # The request log keys patients with the audit store's salt (configured, or shared by all replicas).
    salt = config.pseudonym_salt or getattr(audit, "salt", None)
    return Runtime(config=config, knowledge=knowledge, authenticator=build_authenticator(config),
                   pseudonymize=pseudonymizer(salt), audit=audit)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(jsonio.dumps(body), status=status, mimetype="application/json")
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _outcome(status: int, message: str, code: str, headers: dict[str, str] | None = None) -> Response:
    body = operation_outcome(message, code=code)
    return _json(body, status, headers)


def _routes(app: Flask, runtime: Runtime) -> None:
    @app.get("/cds-services")
    def discovery() -> Response:
        return _json(runtime.discovery())

    @app.post("/cds-services/<service_id>")
    def call_service(service_id: str) -> Response:
        g.log_fields["service"] = service_id
        sent = read_hook_body(_body(runtime), request.content_type, runtime.sent_parts)
        # Built from the request only when the record is evaluated (a short cut needs no links).
        return _json(runtime.call(service_id, sent.value, g.log_fields, g.caller,
                                  base_url=lambda: _public_base(runtime), texts=sent.texts))

    @app.post("/cds-services/<service_id>/feedback")
    def feedback(service_id: str) -> Response:
        g.log_fields["service"] = service_id
        body = read_json_body(_body(runtime), request.content_type)
        result = runtime.feedback(service_id, body, g.caller)
        g.log_fields.update(result)
        return _json(result)

    @app.get("/healthz")
    def healthz() -> Response:
        return _json(runtime.health())

    @app.route("/fhir/metadata", methods=_ANY_METHOD)
    def fhir_metadata() -> Response:
        _read_only()
        return _fhir(fhir_api.capability_statement(runtime.knowledge, _public_base(runtime)))

    @app.route("/fhir/<resource_type>", methods=_ANY_METHOD)
    def fhir_search(resource_type: str) -> Response:
        _read_only()
        params = {name: request.args.getlist(name) for name in request.args}
        return _fhir(fhir_api.search(runtime.knowledge, resource_type, params, _public_base(runtime),
                                     strict=fhir_api.wants_strict(request.headers.get("Prefer"))))

    @app.route("/fhir/<resource_type>/<resource_id>", methods=_ANY_METHOD)
    def fhir_read(resource_type: str, resource_id: str) -> Response:
        _read_only()
        return _fhir(fhir_api.read(runtime.knowledge, resource_type, resource_id))

    @app.route("/regimens", methods=_ANY_METHOD)
    def regimen_index() -> Response:
        _read_only()
        return _html(regimen_page.regimens_index(runtime.knowledge, _public_base(runtime)))

    @app.route("/regimens/<plan_id>", methods=_ANY_METHOD)
    def regimen_detail(plan_id: str) -> Response:
        _read_only()
        return _html(regimen_page.regimen_page(runtime.knowledge, plan_id, _public_base(runtime)))


def _hooks(app: Flask, runtime: Runtime) -> None:
    @app.before_request
    def start() -> None:
        # The request and g, looked up once: each use of Flask's proxies finds the context again, and
        # these two hooks run on every call (bench/README.md, "Hook latency").
        here, scope = request._get_current_object(), g._get_current_object()
        scope.started = time.perf_counter()
        scope.log_fields = {}
        # Preflight requests carry no credentials by design; /healthz and the ops paths are for probes and
        # scrapers; the published artifacts are public; the preview serves made-up demo patients only (its
        # hook calls go through the authenticated endpoints).
        public = (here.path in routes.OPS_PATHS or here.endpoint in PUBLIC_ENDPOINTS
                  or here.blueprint == "preview")
        if here.method != "OPTIONS" and not public:
            scope.caller = ANONYMOUS if runtime.authenticator is None else \
                runtime.authenticate(here.headers.get("Authorization"), _called_url(runtime))

    @app.after_request
    def finish(response: Response) -> Response:
        here, scope = request._get_current_object(), g._get_current_object()
        _cors(response, runtime, here)
        rule = here.url_rule.rule if here.url_rule else "unmatched"
        fields = getattr(scope, "log_fields", {})
        seconds = time.perf_counter() - getattr(scope, "started", time.perf_counter())
        metrics.observe_request(rule, (here.view_args or {}).get("service_id"), response.status_code, seconds)
        log_event(log, "request", method=here.method, route=rule, status=response.status_code,
                  ms=round(seconds * 1000, 1), **fields)
        return response

    @app.errorhandler(CdsError)
    def cds_error(exc: CdsError) -> Response:
        g.setdefault("log_fields", {})["error"] = exc.message if exc.status not in (401, 403) else exc.code
        if exc.status == 401:
            # No detail to the caller: the reason is in the log only.
            return _outcome(401, "Unauthorized", "login", {"WWW-Authenticate": "Bearer"})
        if request.endpoint in _FHIR_ENDPOINTS:
            return _fhir(exc.outcome(), exc.status, exc.headers)
        return _json(exc.outcome(), exc.status, exc.headers)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        message = {
            404: "No such endpoint; the CDS services are listed at GET /cds-services",
            405: f"Method {request.method} is not allowed here",
            413: f"The request body is larger than {runtime.config.max_body_bytes} bytes",
        }.get(status, exc.name)
        return _outcome(status, message, _HTTP_ISSUE_CODES.get(status, "exception"))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        error_id = str(uuid.uuid4())
        # The traceback goes to the log with the id; the caller gets the id only.
        log.exception("unexpected error", extra={"fields": {"errorId": error_id}})
        return _outcome(500, f"Internal error {error_id}; the service log has the details", "exception")


def _fhir(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(fhir_api.dump(body), status=status, mimetype=fhir_api.FHIR_JSON)
    response.headers["X-Content-Type-Options"] = "nosniff"
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _html(page: str) -> Response:
    response = Response(page, mimetype="text/html")
    response.headers["Content-Security-Policy"] = regimen_page.CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _read_only() -> None:
    """The published endpoints answer GET (and HEAD) only."""
    if request.method not in ("GET", "HEAD"):
        raise CdsError(405, f"Method {request.method} is not allowed: the published artifacts are read-only",
                       code="not-supported", headers={"Allow": "GET, HEAD"})


def _public_base(runtime: Runtime) -> str:
    """The service's public base URL for links: CDS_BASE_URL behind a proxy, else the URL called.

    Without CDS_BASE_URL it is built from the request's Host header, as the JWT audience is (see README).
    """
    return (runtime.config.base_url or _root_url(request.scheme, request.host, request.root_path)).rstrip("/")


@functools.lru_cache(maxsize=64)
def _root_url(scheme: str, host: str, root_path: str) -> str:
    # werkzeug's `request.url_root`, remembered: quoting it again for each call that carries a card cost
    # more than the card's own links. Bounded, as the Host header is the client's.
    return get_current_url(scheme, host, root_path)


def _body(runtime: Runtime) -> bytes:
    # Flask's own limit is not applied to chunked uploads under every WSGI server: bound it here too.
    return read_limited(request.stream, runtime.config.max_body_bytes)


def _called_url(runtime: Runtime) -> str:
    """The URL the client called, as it would appear in a JWT `aud` (CDS_BASE_URL behind a proxy)."""
    if runtime.config.base_url:
        return runtime.config.base_url.rstrip("/") + request.path
    return request.base_url


def _cors(response: Response, runtime: Runtime, here: Request) -> None:
    origins = runtime.config.cors_origins
    if "*" in origins:
        # Set on every answer: added, not set, as no route writes these headers itself.
        response.headers.extend(_CORS_ANY)
        return
    origin = here.headers.get("Origin")
    if origin and origin.rstrip("/") in origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers.add("Vary", "Origin")
        response.headers.extend(_CORS_ALLOWED)


# Authorization must be named: the `*` wildcard of Allow-Headers does not cover it.
_CORS_ALLOWED = (
    ("Access-Control-Allow-Headers", "Authorization, Content-Type"),
    ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
    ("Access-Control-Max-Age", "600"),
)
_CORS_ANY = (("Access-Control-Allow-Origin", "*"), *_CORS_ALLOWED)
