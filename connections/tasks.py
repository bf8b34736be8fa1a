"""Thin Celery entry points for the refresh engine (the engine is connections.refresh)."""

import uuid

from celery import shared_task
from django.conf import settings

from common import metrics
from common.health import SWEEP
from common.models import Heartbeat

from . import events, refresh


def soft_time_limit_for(hard: float) -> float:
    """Some seconds to unwind before the hard limit, and never negative: a
    negative soft limit fires at once and aborts every refresh."""
    return max(hard - 10, hard * 0.8)


@shared_task(name="connections.tasks.refresh_sweep", ignore_result=True, time_limit=60, soft_time_limit=50)
def refresh_sweep() -> int:
    """Beat's sweep: claim every due connection and queue it in batches.

    Each sweep that ends leaves a heartbeat (``/readyz``, ``/metrics``,
    ``manage.py doctor``): its age says whether beat and the refresh workers are alive.
    """
    with metrics.SWEEP_DURATION.time():
        queued = refresh.sweep(enqueue=queue_refresh_batch)
    metrics.SWEEP_CLAIMED.inc(queued)
    Heartbeat.beat(SWEEP)
    return queued


def queue_refresh_batch(connection_ids: list[uuid.UUID], lease_token: uuid.UUID) -> None:
    # A batch whose lease has run out is claimed again by a later sweep: an
    # older message for it is worthless, so it expires with the lease.
    refresh_connections.apply_async(
        args=[[str(i) for i in connection_ids], str(lease_token)], expires=settings.REFRESH_LEASE_SECONDS
    )


@shared_task(
    name="connections.tasks.refresh_connections",
    ignore_result=True,
    acks_late=True,
    time_limit=settings.REFRESH_TASK_TIME_LIMIT,
    soft_time_limit=soft_time_limit_for(settings.REFRESH_TASK_TIME_LIMIT),
)
def refresh_connections(connection_ids: list[str], lease_token: str) -> dict[str, int]:
    return refresh.refresh_batch(connection_ids=connection_ids, lease_token=uuid.UUID(lease_token))


@shared_task(name="connections.tasks.connection_events_purge", ignore_result=True, time_limit=600, soft_time_limit=540)
def connection_events_purge() -> int:
    return events.connection_events_purge(older_than_days=settings.REFRESH_EVENT_RETENTION_DAYS, max_seconds=480)
