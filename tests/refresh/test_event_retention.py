"""Routine refresh history is purged after REFRESH_EVENT_RETENTION_DAYS; everything else stays."""

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from connections import tasks
from connections.events import connection_event, connection_events_purge
from connections.models import ConnectionEvent, EventKind
from tests.refresh.helpers import compressed_exact, connect

pytestmark = compressed_exact


@pytest.fixture
def history(team, exact_client, exact):
    """A connection with refreshed events 1, 6, 8, 9 and 10 days old, and older events of other kinds."""
    connection = connect(exact_client, exact, name="History", owner=team.alice, remaining=300)
    ConnectionEvent.objects.filter(connection=connection).delete()
    now = timezone.now()

    def event(kind: str, days: float) -> ConnectionEvent:
        created = connection_event(connection, kind, f"{kind}, {days} days ago")
        ConnectionEvent.objects.filter(pk=created.pk).update(created_at=now - timedelta(days=days))
        return created

    recent = [event(EventKind.REFRESHED, d) for d in (1, 6)]
    old = [event(EventKind.REFRESHED, d) for d in (8, 9, 10)]
    kept = [event(EventKind.REFRESH_FAILED, 30), event(EventKind.NEEDS_REAUTH, 30), event(EventKind.AUTHORIZED, 60)]
    return recent, old, kept


def remaining() -> set:
    return set(ConnectionEvent.objects.values_list("id", flat=True))


def test_old_refreshed_events_are_deleted_in_batches_and_the_rest_kept(history):
    recent, old, kept = history

    assert connection_events_purge(older_than_days=7, batch_size=2) == 3

    assert remaining() == {e.pk for e in recent + kept}
    assert connection_events_purge(older_than_days=7) == 0


def test_a_purge_out_of_time_stops_and_the_next_run_continues(history):
    recent, old, kept = history

    assert connection_events_purge(older_than_days=7, max_seconds=0) == 0
    assert len(remaining()) == 8
    assert connection_events_purge(older_than_days=7, batch_size=1) == 3


def test_beat_purges_hourly_with_the_configured_retention(history, settings):
    settings.REFRESH_EVENT_RETENTION_DAYS = 5.5
    recent, old, kept = history

    assert tasks.connection_events_purge() == 4  # 6, 8, 9 and 10 days old

    assert remaining() == {recent[0].pk} | {e.pk for e in kept}
    schedule = django_settings.CELERY_BEAT_SCHEDULE["purge-connection-events"]
    assert schedule == {"task": "connections.tasks.connection_events_purge", "schedule": 3600.0}
