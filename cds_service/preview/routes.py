"""The preview's routes: the page and its files, the demo catalogue and the demo FHIR endpoint."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from flask import Blueprint, Flask, Response, json, request

from cds_service.demo.codes import dexamethasone_products, routes
from cds_service.demo.population import Population, build_population
from cds_service.demo.search import read, search
from cds_service.runtime import Runtime

STATIC = Path(__file__).resolve().parent / "static"
# Everything from this origin only; no inline script or style, no plug-ins, no framing, no form posts.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def register_preview(app: Flask, runtime: Runtime) -> None:
    """Add the preview when the configuration turns it on (CDS_PREVIEW, CDS_JWT_ISSUERS)."""
    if runtime.config.preview_on:
        app.register_blueprint(preview_blueprint(runtime))


def preview_blueprint(runtime: Runtime) -> Blueprint:
    """The blueprint named "preview": app.py serves its routes without authentication (demo data only)."""
    blueprint = Blueprint("preview", __name__, static_folder=str(STATIC), static_url_path="/preview")
    populations: dict[date, Population] = {}

    def population() -> Population:
        today = runtime.today()
        if today not in populations:
            populations.clear()  # one day at a time: dates are relative to the day served
            populations[today] = build_population(runtime.knowledge, today)
        return populations[today]

    @blueprint.get("/")
    def page() -> Response:
        return blueprint.send_static_file("index.html")

    @blueprint.get("/demo/patients")
    def patients() -> Response:
        served = population()
        body = {
            "today": served.today.isoformat(),
            "openService": runtime.authenticator is None,
            "patients": [{"id": p.id, "label": p.label, "group": p.group, "shows": p.shows}
                         for p in served.patients],
            "products": dexamethasone_products(runtime.knowledge),
            "routes": routes(runtime.knowledge),
        }
        return Response(json.dumps(body), mimetype="application/json")

    @blueprint.get("/demo/fhir/<kind>")
    def fhir_search(kind: str) -> Response:
        return _fhir(search(population(), kind, request.args.to_dict(flat=False)))

    @blueprint.get("/demo/fhir/<kind>/<resource_id>")
    def fhir_read(kind: str, resource_id: str) -> Response:
        return _fhir(read(population(), kind, resource_id))

    @blueprint.after_request
    def headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    return blueprint


def _fhir(resource: dict) -> Response:
    return Response(json.dumps(resource), mimetype="application/fhir+json")
