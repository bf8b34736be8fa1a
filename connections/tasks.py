"""Thin Celery entry points for the refresh engine (logic in connections.refresh)."""

from celery import shared_task
from django.conf import settings

from . import batches, refresh

SWEEP_BATCH = 500


def soft_time_limit_for(hard: float) -> float:
    """Some seconds to unwind before the hard limit, and never negative: a
    negative soft limit fires at once and aborts every refresh."""
    return max(hard - 10, hard * 0.8)


@shared_task(name="connections.tasks.refresh_sweep", ignore_result=True, time_limit=60, soft_time_limit=50)
def refresh_sweep() -> int:
    """Claim every due connection and queue them as refresh tasks (see ``batches.refresh_batches``)."""
    queued = 0
    while True:
        ids, lease = refresh.refresh_claim_due(limit=SWEEP_BATCH)
        for batch in batches.refresh_batches(ids):
            refresh_connections.apply_async(
                args=[[str(i) for i in batch], str(lease)], expires=settings.REFRESH_LEASE_SECONDS
            )
        queued += len(ids)
        if len(ids) < SWEEP_BATCH:
            return queued


@shared_task(
    name="connections.tasks.refresh_connections",
    ignore_result=True,
    acks_late=True,
    time_limit=settings.REFRESH_TASK_TIME_LIMIT,
    soft_time_limit=soft_time_limit_for(settings.REFRESH_TASK_TIME_LIMIT),
)
def refresh_connections(connection_ids: list[str], lease_token: str) -> dict[str, int]:
    import uuid

    return batches.connections_refresh_claimed(connection_ids=connection_ids, lease_token=uuid.UUID(lease_token))


@shared_task(
    name="connections.tasks.refresh_connection",
    ignore_result=True,
    acks_late=True,
    time_limit=settings.REFRESH_TASK_TIME_LIMIT,
    soft_time_limit=soft_time_limit_for(settings.REFRESH_TASK_TIME_LIMIT),
)
def refresh_connection(connection_id: str, lease_token: str) -> str:
    """One claimed connection (what sweeps queued before batches existed; still served)."""
    import uuid

    return refresh.connection_refresh(connection_id=connection_id, lease_token=uuid.UUID(lease_token)).result


@shared_task(name="connections.tasks.connection_events_purge", ignore_result=True, time_limit=600, soft_time_limit=540)
def connection_events_purge() -> int:
    from .services import connection_events_purge as purge

    return purge(older_than_days=settings.REFRESH_EVENT_RETENTION_DAYS, max_seconds=480)
