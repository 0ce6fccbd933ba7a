"""The operations endpoints: /livez, /readyz and /metrics, registered on the app beside its own routes."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, request

from cds_service import jsonio
from cds_service.errors import operation_outcome
from cds_service.ops import health, metrics

# Served without a JWT, to the cluster: probes and the metrics scraper carry none.
OPS_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/metrics"})


def _json(body: Any, status: int = 200) -> Response:
    return Response(jsonio.dumps(body), status=status, mimetype="application/json")


def register(app: Flask, runtime: Any) -> None:
    """Add the endpoints and start counting this runtime's events."""
    metrics.install([s.id for s in runtime.registry], getattr(runtime.knowledge, "rule_codes", None) or {})

    @app.get("/livez")
    def livez() -> Response:
        return _json({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        status, body = health.readiness(runtime)
        return _json(body, status)

    @app.get("/metrics")
    def prometheus() -> Response:
        if not metrics.allowed(request.remote_addr, runtime.config.metrics_allow):
            return _json(operation_outcome("/metrics is not served to this address (CDS_METRICS_ALLOW)",
                                           code="forbidden"), 403)
        body, content_type = metrics.render()
        return Response(body, status=200, content_type=content_type)
