"""Liveness and readiness probes for load balancers and orchestrators."""

import logging

from celery import current_app
from django.db import connection
from django.http import JsonResponse

logger = logging.getLogger(__name__)


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


def readyz(request):
    checks = {"database": _database_ok(), "broker": _broker_ok()}
    ready = all(checks.values())
    body = {
        "status": "ok" if ready else "unavailable",
        "checks": {k: "ok" if v else "failing" for k, v in checks.items()},
    }
    return JsonResponse(body, status=200 if ready else 503)
