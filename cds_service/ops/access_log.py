"""gunicorn's logger, without building the access-log lines that nobody receives."""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.glogging import Logger


class QuietAccessLogger(Logger):
    """With `logconfig_dict` set (deploy/gunicorn.conf.py), gunicorn formats every request's access-log
    atoms (about 30 µs a request) before its access logger — kept at WARNING and without handlers there,
    as the service writes its own request log — drops the line. This skips the work when nothing listens."""

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if self.access_log.isEnabledFor(logging.INFO):
            super().access(resp, req, environ, request_time)
