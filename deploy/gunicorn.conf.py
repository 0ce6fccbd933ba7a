"""gunicorn settings for Dex-Free CDS; every value comes from the service's own configuration (README)."""

from cds_service.config import Config

_config = Config.from_env()

wsgi_app = "cds_service.app:create_app()"
bind = [f"[{_config.host}]:{_config.port}" if ":" in _config.host else f"{_config.host}:{_config.port}"]
# Threads, not only processes: a hook call mostly waits on the EHR's FHIR server.
worker_class = "gthread"
workers = _config.workers
threads = _config.threads
# Load the app (knowledge artifacts, FHIR models) once in the master: a broken artifact stops the
# start-up with its message instead of crash-looping workers, and workers share the warmed models.
preload_app = True
# Well above CDS_CALL_DEADLINE_MS: the call's own deadline answers first.
timeout = 30
graceful_timeout = 10
keepalive = 5
# The service writes its own JSON request log (without query strings or tokens).
accesslog = None
errorlog = "-"
loglevel = _config.log_level.lower()
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "cds_service.logs.JsonFormatter"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json",
                            "stream": "ext://sys.stderr"}},
    "root": {"handlers": ["stderr"], "level": _config.log_level.upper()},
    "loggers": {
        "gunicorn.error": {"handlers": ["stderr"], "level": _config.log_level.upper(), "propagate": False},
        "gunicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        # Alembic announces its plugins at import, before the app configures its own logging.
        "alembic": {"level": "WARNING"},
    },
}
# Bodies are bounded by CDS_MAX_BODY_BYTES in the app; header sizes by gunicorn's defaults.
forwarded_allow_ips = "127.0.0.1,::1"
