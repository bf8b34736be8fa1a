"""The workspace event stream: record, publish, read, purge.

1. **Record** (``event_record``): the change's own transaction writes a
   ``WorkspaceEvent`` without a cursor (an outbox row), so the event exists
   exactly when the change does.
2. **Publish** (``workspace_events_publish``, right after that commit, and
   every few seconds by beat for anything a crash left behind): under the row
   lock of the workspace's ``EventSequence``, number the committed,
   unpublished events and fan them out to the workspace's webhook endpoints.
3. **Read** (``integrations.selectors.workspace_events_after``): only
   published events, by cursor.

Why not the table's id or the time as the cursor: concurrent transactions
commit out of order, so a reader that has seen cursor 7 could later find a
row with cursor 5 that committed after it read, and skip it forever. Here a
cursor is handed out only to rows already committed, by one publisher at a
time per workspace, and each publisher commits its numbers before the next
one can take the lock: cursor n+1 never becomes visible before cursor n.
docs/integrations.md walks through it.
"""

import logging
import time
from datetime import timedelta
from functools import partial

from django.db import IntegrityError, transaction
from django.utils import timezone

from . import delivery
from .models import EventSequence, WorkspaceEvent

logger = logging.getLogger(__name__)

PUBLISH_BATCH = 500


def event_record(
    *, workspace_id, type: str, data: dict, connection=None, dedupe_key: str = ""
) -> WorkspaceEvent | None:
    """Write an unpublished event in the caller's transaction; it is published right after the commit.

    With ``dedupe_key``, an event already stored under that key in the
    workspace is not stored again (``None`` is returned).
    """
    event = WorkspaceEvent(
        workspace_id=workspace_id, type=type, data=data, connection=connection, dedupe_key=dedupe_key
    )
    if dedupe_key:
        try:
            with transaction.atomic():
                event.save(force_insert=True)
        except IntegrityError:
            return None
    else:
        event.save(force_insert=True)
    # robust: a failed publish must not break the change that was just committed; the sweep retries it.
    transaction.on_commit(partial(workspace_events_publish, workspace_id=workspace_id), robust=True)
    return event


def workspace_events_publish(*, workspace_id) -> int:
    """Give the workspace's committed, unpublished events their cursors and queue their webhooks.

    Returns how many were published. Cheap when there is nothing to do (one
    indexed read under the sequence lock).
    """
    published = 0
    while True:
        count = _publish_batch(workspace_id)
        published += count
        if count < PUBLISH_BATCH:
            return published


@transaction.atomic
def _publish_batch(workspace_id) -> int:
    sequence = _locked_sequence(workspace_id)
    # Read after the lock is held: this statement sees every row committed
    # before this publisher got its turn.
    events = list(
        WorkspaceEvent.objects.filter(workspace_id=workspace_id, cursor__isnull=True).order_by("created_at", "id")[
            :PUBLISH_BATCH
        ]
    )
    if not events:
        return 0
    now = timezone.now()
    for event in events:
        sequence.last_cursor += 1
        event.cursor = sequence.last_cursor
        event.published_at = now
    WorkspaceEvent.objects.bulk_update(events, ["cursor", "published_at"])
    sequence.save(update_fields=["last_cursor"])
    delivery.deliveries_create(events)
    return len(events)


def _locked_sequence(workspace_id) -> EventSequence:
    sequence = EventSequence.objects.select_for_update().filter(workspace_id=workspace_id).first()
    if sequence is None:
        EventSequence.objects.bulk_create([EventSequence(workspace_id=workspace_id)], ignore_conflicts=True)
        sequence = EventSequence.objects.select_for_update().get(workspace_id=workspace_id)
    return sequence


def workspace_events_catch_up(*, workspace_id) -> None:
    """Before a read: publish what has committed but is not published yet (normally nothing)."""
    if WorkspaceEvent.objects.filter(workspace_id=workspace_id, cursor__isnull=True).exists():
        workspace_events_publish(workspace_id=workspace_id)


def workspace_events_publish_stale(*, older_than_seconds: float = 2) -> int:
    """Beat's safety net: publish events whose after-commit publish never ran (the process died)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    workspaces = (
        WorkspaceEvent.objects.filter(cursor__isnull=True, created_at__lt=cutoff)
        .values_list("workspace_id", flat=True)
        .distinct()
    )
    return sum(workspace_events_publish(workspace_id=workspace_id) for workspace_id in list(workspaces))


def workspace_events_purge(*, older_than_days: float, batch_size: int = 2000, max_seconds: float = 300) -> int:
    """Delete events (with their deliveries and attempts) older than ``older_than_days``, oldest first.

    In short batches, stopping after ``max_seconds``; the next run continues.
    The sequence rows stay, so cursors keep increasing after a purge.
    """
    cutoff = timezone.now() - timedelta(days=older_than_days)
    old = WorkspaceEvent.objects.filter(created_at__lt=cutoff).order_by("created_at")
    deleted, stop_at = 0, time.monotonic() + max_seconds
    while time.monotonic() < stop_at:
        ids = list(old.values_list("id", flat=True)[:batch_size])
        if not ids:
            break
        WorkspaceEvent.objects.filter(id__in=ids).delete()
        deleted += len(ids)
    return deleted
