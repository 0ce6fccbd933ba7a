"""gunicorn settings for Dex-Free CDS; every value comes from the service's own configuration (README).

Metrics under several workers: PROMETHEUS_MULTIPROC_DIR is set here, before the app (and so
prometheus_client, which picks its multiprocess mode at import) is loaded; unset, a fresh temporary
folder is made for this master and removed at its exit. `on_starting` empties it, `child_exit` folds a
dead worker's files into an archive (cds_service/ops/metrics.py says why and which pitfalls it bounds).
"""

import gc
import os
import shutil
import tempfile

from cds_service.config import Config

_config = Config.from_env()
if _config.metrics_dir is not None:
    _metrics_dir = str(_config.metrics_dir)
    os.makedirs(_metrics_dir, exist_ok=True)
else:
    _metrics_dir = tempfile.mkdtemp(prefix="dexfree-metrics-")
# Inherited by the workers (and seen again when gunicorn reads this file once more, which then keeps
# the folder).
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir

# Only now: prometheus_client reads the variable when it is first imported.
from cds_service.ops import metrics as _metrics  # noqa: E402

if _config.metrics_dir is None:
    # Remembered in the imported module, which outlives a second reading of this file.
    _metrics.temporary_dir = _metrics_dir

wsgi_app = "cds_service.app:create_app()"
bind = [f"[{_config.host}]:{_config.port}" if ":" in _config.host else f"{_config.host}:{_config.port}"]
# Threads, not only processes: a hook call mostly waits on the EHR's FHIR server.
worker_class = "gthread"
workers = _config.workers
threads = _config.threads
# Load the app (knowledge artifacts, FHIR models) once in the master: a broken artifact stops the
# start-up with its message instead of crash-looping workers, and workers share the warmed models.
preload_app = True
# No recycling after N requests (max_requests): each recycled worker would leave metrics files behind
# (prometheus/client_python #275); workers are replaced only when they die.
max_requests = 0
# gunicorn 25+'s control socket lives in $HOME by default: the image's root filesystem is read-only and
# nothing here uses `gunicornc`.
control_socket_disable = True
# Well above CDS_CALL_DEADLINE_MS: the call's own deadline answers first.
timeout = 30
graceful_timeout = 10
keepalive = 5
# The service writes its own JSON request log (without query strings or tokens).
accesslog = None

# gunicorn's logger without the access-log lines nobody receives (cds_service/ops/access_log.py).
logger_class = "cds_service.ops.access_log.QuietAccessLogger"
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


def pre_fork(server, worker):
    """In the master, which has loaded the app (preload): what it holds now (the knowledge, the FHIR models)
    lives as long as the workers, so it goes to the collector's permanent generation. A worker's full
    collection then never walks those ~180,000 objects (tens of milliseconds in a request's tail), and
    the pages they sit on stay shared with the master instead of being copied by the collector's writes."""
    gc.freeze()


def post_fork(server, worker):
    """In each worker: the young generation is collected every 10,000 allocations, not 700. Decoding one
    hook body makes tens of thousands of containers that reference counting frees when the call ends;
    at 700 the collector ran dozens of times per large call and found nothing to free (a 2,000-resource
    body: 7.1 ms decoded at 700, 5.5 ms at 10,000; bench/README.md)."""
    gc.set_threshold(10_000, 20, 20)


def on_starting(server):
    """Before the workers start: an empty metrics folder (files of an earlier run would add up)."""
    _metrics.prepare_directory(_metrics_dir)


def child_exit(server, worker):
    """A worker is gone (any cause, SIGKILL included: the master reaps it): fold its metrics files."""
    _metrics.worker_exited(worker.pid, _metrics_dir)


def on_exit(server):
    """The temporary metrics folder made for this master goes with it (a configured one stays)."""
    if _metrics.temporary_dir == _metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)

