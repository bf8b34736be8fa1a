"""Liveness and readiness probes for load balancers and orchestrators, and the metrics endpoint."""

import hmac
import ipaddress
import logging
from functools import cache

from celery import current_app
from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.utils.module_loading import import_string
from prometheus_client import CONTENT_TYPE_LATEST

from . import metrics
from .models import Heartbeat

logger = logging.getLogger(__name__)

SWEEP = "refresh_sweep"  # the heartbeat the refresh sweep writes (connections.tasks.refresh_sweep)


def healthz(request):
    return JsonResponse({"status": "ok"})


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        logger.exception("readiness: database unreachable")
        return False


def _broker_ok() -> bool:
    # The project's Celery app (config/celery_app.py) is the current one once Django has loaded config.
    try:
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
        return True
    except Exception:
        logger.exception("readiness: broker unreachable")
        return False


def last_sweep_age() -> float | None:
    """Seconds since the refresh sweep last ran (beat sends it, a worker runs it); None if never."""
    try:
        return Heartbeat.age(SWEEP)
    except Exception:
        logger.exception("readiness: cannot read the sweep's heartbeat")
        return None


def sweep_state(age: float | None) -> str:
    if age is None:
        return "never"
    return "ok" if age <= settings.SWEEP_STALE_SECONDS else "stale"


def readyz(request):
    """Ready when the database and the broker answer (503 otherwise).

    Also reports the age of the last refresh sweep. A stale sweep (beat or the
    refresh workers are down) does not make the web process unready: taking
    it out of the load balancer would not bring beat back and would stop the
    token API too. Alert on ``checks.sweep`` or ``tokenkeeper_last_sweep_age_seconds``.
    """
    checks = {"database": _database_ok(), "broker": _broker_ok()}
    ready = all(checks.values())
    age = last_sweep_age() if checks["database"] else None
    body = {
        "status": "ok" if ready else "unavailable",
        "checks": {**{k: "ok" if v else "failing" for k, v in checks.items()}, "sweep": sweep_state(age)},
        "last_sweep_age_seconds": None if age is None else round(age, 1),
    }
    return JsonResponse(body, status=200 if ready else 503)


# --- /metrics ----------------------------------------------------------------------------------


@cache
def _collectors() -> list:
    return [import_string(path)() for path in settings.METRICS_COLLECTORS]


@cache
def _internal_networks() -> list:
    return [ipaddress.ip_network(network, strict=False) for network in settings.METRICS_ALLOWED_NETWORKS]


def _metrics_allowed(request) -> bool:
    """``Authorization: Bearer <METRICS_TOKEN>`` when a token is set; else a direct request
    (no proxy header) from an internal address."""
    if settings.METRICS_TOKEN:
        given = request.META.get("HTTP_AUTHORIZATION", "")
        return hmac.compare_digest(given.encode(), f"Bearer {settings.METRICS_TOKEN}".encode())
    if any(header in request.META for header in ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")):
        return False  # came through a proxy: REMOTE_ADDR is the proxy's, not the caller's
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in _internal_networks())


def metrics_view(request):
    if not _metrics_allowed(request):
        return JsonResponse(
            {"error": {"code": "forbidden", "message": "Metrics need the METRICS_TOKEN bearer token."}}, status=403
        )
    return HttpResponse(metrics.render(_collectors()), content_type=CONTENT_TYPE_LATEST)
