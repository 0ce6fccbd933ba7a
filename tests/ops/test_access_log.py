"""The gunicorn logger builds access-log lines only when its access logger would write them."""

from __future__ import annotations

import logging

from gunicorn import glogging

from cds_service.ops.access_log import QuietAccessLogger


def test_access_lines_are_built_only_when_the_access_logger_listens(monkeypatch):
    built: list[object] = []
    monkeypatch.setattr(glogging.Logger, "access", lambda self, resp, req, environ, took: built.append(req))
    quiet = QuietAccessLogger.__new__(QuietAccessLogger)
    quiet.access_log = logging.getLogger("tests.ops.access")
    quiet.access_log.setLevel(logging.WARNING)  # as deploy/gunicorn.conf.py keeps gunicorn.access
    quiet.access(None, "first", {}, 0)
    quiet.access_log.setLevel(logging.INFO)  # an operator who turns gunicorn's access log on
    quiet.access(None, "second", {}, 0)
    assert built == ["second"]
