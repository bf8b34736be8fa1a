"""gunicorn settings for Tokenkeeper's web processes.

    gunicorn config.wsgi -c config/gunicorn.conf.py

Every value can be changed from the environment (names below) or on the
command line. Sizing, measured in docs/benchmarks.md and explained in
docs/deploy.md:

- ``gthread`` workers: a token request may wait for the provider (an
  on-demand refresh, up to the token endpoint's 90 s read timeout); a thread
  waits, not the whole process. Threads also keep client connections alive.
- ``WEB_CONCURRENCY`` processes (default: the number of CPUs, at least 2)
  × ``GUNICORN_THREADS`` threads each (default 4). Each thread holds one
  PostgreSQL connection: web's share of the connection budget is
  processes × threads.
- ``timeout``/``graceful_timeout`` 120 s: longer than a token request's
  longest wait for the provider, so a restart lets an on-demand refresh
  store the rotated tokens it asked for instead of losing them.
- The access log is one JSON line per request with the path **without its
  query string** (``%(U)s``: a callback's ``?code=…&state=…`` never reaches a
  log) and the request id Tokenkeeper put in ``X-Request-ID``.
"""

import multiprocessing
import os
from pathlib import Path


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
workers = _int("WEB_CONCURRENCY", max(multiprocessing.cpu_count(), 2))
threads = _int("GUNICORN_THREADS", 4)
timeout = _int("GUNICORN_TIMEOUT", 120)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 120)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# Recycle a worker now and then (jittered, so not all at once): bounds what a leak can grow to.
max_requests = _int("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = max_requests // 10
# gunicorn's heartbeat files on tmpfs (its docs' advice): a slow disk never makes a worker look dead.
_SHM = "/dev/shm"  # noqa: S108 (gunicorn's own files, not a temporary file of ours)
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR", _SHM if Path(_SHM).is_dir() else None)

accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
access_log_format = (
    '{"event": "request", "logger": "gunicorn.access", "time": "%(t)s", "request_id": "%({x-request-id}o)s", '
    '"method": "%(m)s", "path": "%(U)s", "status": %(s)s, "bytes": "%(B)s", "duration_ms": %(M)s, '
    '"remote": "%(h)s", "user_agent": "%(a)s"}'
)

# Metrics of every process on this host, merged by /metrics (common/metrics.py).
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", os.environ.get("TOKENKEEPER_VAR_DIR", "var") + "/metrics")


def on_starting(server) -> None:
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)


def child_exit(server, worker) -> None:
    """A web process ended: its live gauges leave /metrics (its counters stay, as counters must)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
