"""Gauges about connections, computed when ``/metrics`` is scraped (common/metrics.py).

Connections by status, the due backlog and the oldest overdue refresh, the
last sweep's age, and each provider's refresh window. Bounded: the backlog is
counted through the sweeper's partial index up to ``BACKLOG_CAP``, the
status count is one grouped query under a statement timeout on PostgreSQL,
and the answer is kept ``CACHE_SECONDS`` per process, so frequent scrapes
of several web processes cost the database little.
"""

import logging
import time

from django.db import connection, transaction
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from common.health import SWEEP
from common.metrics import PREFIX
from common.models import Heartbeat
from oauthclients.providers import PROVIDERS

from .models import Connection, Status

logger = logging.getLogger(__name__)

BACKLOG_CAP = 100_000
CACHE_SECONDS = 10
STATEMENT_TIMEOUT_MS = 2000


def _read() -> dict:
    now = timezone.now()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
        by_status = dict(Connection.objects.order_by().values_list("status").annotate(n=Count("id")))
        due = Connection.objects.filter(refresh_due_at__lte=now).order_by()
        backlog = due[:BACKLOG_CAP].count()
        oldest = due.aggregate(oldest=Min("refresh_due_at"))["oldest"]
    return {
        "by_status": by_status,
        "backlog": backlog,
        "oldest_overdue": (now - oldest).total_seconds() if oldest else 0.0,
        "sweep_age": Heartbeat.age(SWEEP),
    }


class ConnectionsCollector:
    def __init__(self):
        self._cached: tuple[float, dict] | None = None

    def _values(self) -> dict | None:
        if self._cached and time.monotonic() - self._cached[0] < CACHE_SECONDS:
            return self._cached[1]
        try:
            values = _read()
        except Exception:
            logger.exception("metrics: reading the connection gauges failed")
            return None
        self._cached = (time.monotonic(), values)
        return values

    def collect(self):
        yield self._windows()
        values = self._values()
        if values is None:
            return
        by_status = GaugeMetricFamily(f"{PREFIX}connections", "Connections by status.", labels=["status"])
        for status in Status.values:
            by_status.add_metric([status], values["by_status"].get(status, 0))
        yield by_status
        yield GaugeMetricFamily(
            f"{PREFIX}refresh_due_backlog", "Connections whose refresh is due now.", value=values["backlog"]
        )
        yield GaugeMetricFamily(
            f"{PREFIX}refresh_oldest_overdue_seconds",
            "How long the most overdue refresh has been due.",
            value=values["oldest_overdue"],
        )
        if values["sweep_age"] is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}last_sweep_age_seconds", "Seconds since the last refresh sweep.", value=values["sweep_age"]
            )

    def _windows(self) -> GaugeMetricFamily:
        windows = GaugeMetricFamily(
            f"{PREFIX}refresh_window_seconds",
            "The provider accepts a refresh only this many seconds before expiry.",
            labels=["provider"],
        )
        for key, provider in PROVIDERS.items():
            if (window := provider.refresh_policy.window_seconds) is not None:
                windows.add_metric([key], window)
        return windows
