"""A connection's history: one event row per thing that happened to it, and their retention."""

import time
from datetime import timedelta

from django.utils import timezone

from .models import Connection, ConnectionEvent, EventKind
from .signals import connection_event_recorded


def connection_event(connection: Connection, kind: str, detail: str = "", **data) -> ConnectionEvent:
    """Record one event; every kind but the routine ``refreshed`` is also announced
    (``connection_event_recorded``), so the engine's everyday path does no more work."""
    event = ConnectionEvent.objects.create(connection=connection, kind=kind, detail=detail[:2000], data=data)
    if kind != EventKind.REFRESHED:
        connection_event_recorded.send(sender=ConnectionEvent, connection=connection, event=event)
    return event


def connection_events_purge(*, older_than_days: float, batch_size: int = 5000, max_seconds: float = 300) -> int:
    """Delete routine ``refreshed`` events older than ``older_than_days``, oldest first.

    At 100,000 Exact Online connections the engine records ~14 million of
    them a day; every other kind (failures, needs_reauth, reconnects …) is
    kept. Deletes in batches of ``batch_size`` (short transactions, no long
    lock) and stops after ``max_seconds``; the next run continues. Returns how
    many were deleted.
    """
    cutoff = timezone.now() - timedelta(days=older_than_days)
    old = ConnectionEvent.objects.filter(kind=EventKind.REFRESHED, created_at__lt=cutoff).order_by("created_at")
    deleted, stop_at = 0, time.monotonic() + max_seconds
    while time.monotonic() < stop_at:
        ids = list(old.values_list("id", flat=True)[:batch_size])
        if not ids:
            break
        deleted += ConnectionEvent.objects.filter(id__in=ids).delete()[0]
    return deleted
