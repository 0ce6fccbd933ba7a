"""The floor of the latency benchmark: a bare Flask app that parses the JSON body and answers no cards.

bench_hooks.py serves it with the same gunicorn binary and configuration (deploy/gunicorn.conf.py) as the
service, so what the service costs above it is the service's own work, not the framework's.
"""

from __future__ import annotations

import json

from flask import Flask, Response, request

app = Flask(__name__)


@app.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Response:
    json.loads(request.get_data())
    return Response('{"cards": []}', mimetype="application/json")


@app.get("/healthz")
def healthz() -> Response:
    return Response('{"status": "ok"}', mimetype="application/json")
