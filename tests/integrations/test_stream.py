"""The workspace event stream: GET /api/v1/workspaces/<slug>/events/?after=<cursor>.

The acceptance test: 1,000 events written by eight threads in concurrent
transactions on PostgreSQL that commit out of order, read meanwhile by a
consumer paging with after=, which sees each exactly once and in order.
"""

import json
import random
import threading
import time
from datetime import timedelta

import pytest
from django.db import connections, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from audit.services import Actor
from connections.events import connection_event
from connections.models import EventKind
from connections.services import connection_create, connection_disconnect
from integrations import stream
from integrations.models import WorkspaceEvent
from tests.factories import make_api_key
from tests.helpers import assert_error
from tests.integrations.helpers import events_url

WRITERS = 8
PER_WRITER = 125


def reader_for(workspace, scopes=("read",)) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_api_key(workspace, scopes=list(scopes))}")
    return client


def record(workspace, n: int, type: str = "connection.refresh_failed") -> WorkspaceEvent:
    return stream.event_record(workspace_id=workspace.id, type=type, data={"n": n})


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_consumer_sees_a_burst_from_concurrent_writers_exactly_once_and_in_order(team):
    reader = reader_for(team.a)
    written: list[str] = []
    seen: list[dict] = []
    errors: list[BaseException] = []
    writing = threading.Event()
    writing.set()

    def writer(index: int) -> None:
        rng = random.Random(index)
        try:
            for n in range(PER_WRITER):
                with transaction.atomic():
                    event = record(team.a, index * 1000 + n)
                    # Commit a little later, at random: transactions finish out of their start order.
                    time.sleep(rng.uniform(0, 0.006))
                written.append(str(event.id))
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    def consumer() -> None:
        cursor, deadline = 0, time.monotonic() + 90
        try:
            while len(seen) < WRITERS * PER_WRITER and time.monotonic() < deadline:
                page = reader.get(events_url(), {"after": cursor, "limit": 37}).json()
                seen.extend(page["events"])
                cursor = page["next_cursor"]
                if not page["has_more"]:
                    time.sleep(0.005)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    reading = threading.Thread(target=consumer)
    reading.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reading.join()

    assert errors == []
    ids = [event["id"] for event in seen]
    assert len(ids) == len(set(ids)) == WRITERS * PER_WRITER, "an event was missed or seen twice"
    assert set(ids) == set(written)
    cursors = [event["cursor"] for event in seen]
    assert cursors == list(range(1, WRITERS * PER_WRITER + 1))
    # The burst did commit out of order: by creation time, some events came before others
    # that got a smaller cursor. An id or timestamp cursor would have let the reader skip them.
    created = list(WorkspaceEvent.objects.order_by("cursor").values_list("created_at", flat=True))
    assert any(earlier > later for earlier, later in zip(created, created[1:], strict=False))


@pytest.mark.django_db
class TestReading:
    def test_pages_follow_the_cursor(self, team):
        for n in range(5):
            record(team.a, n)
        reader = reader_for(team.a)
        first = reader.get(events_url(), {"limit": 2}).json()
        assert [e["data"]["n"] for e in first["events"]] == [0, 1]
        assert first["has_more"] is True and first["next_cursor"] == first["events"][-1]["cursor"]
        rest = reader.get(events_url(), {"after": first["next_cursor"], "limit": 10}).json()
        assert [e["data"]["n"] for e in rest["events"]] == [2, 3, 4]
        assert rest["has_more"] is False
        empty = reader.get(events_url(), {"after": rest["next_cursor"]}).json()
        assert empty == {"events": [], "next_cursor": rest["next_cursor"], "has_more": False}

    def test_an_event_has_an_id_a_cursor_a_type_a_timestamp_and_data(self, team):
        event = record(team.a, 7, type="connection.revoked")
        [shown] = reader_for(team.a).get(events_url()).json()["events"]
        assert shown == {
            "id": str(event.id),
            "cursor": 1,
            "type": "connection.revoked",
            "timestamp": event.created_at.isoformat().replace("+00:00", "Z"),
            "data": {"n": 7},
        }

    def test_types_filter(self, team):
        record(team.a, 1, type="connection.revoked")
        record(team.a, 2, type="exact_online.webhook")
        body = reader_for(team.a).get(events_url(), {"types": "exact_online.webhook"}).json()
        assert [e["data"]["n"] for e in body["events"]] == [2]

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"after": "-1"}, "after"),
            ({"after": "x"}, "after"),
            ({"limit": "0"}, "limit"),
            ({"limit": "5000"}, "limit"),
            ({"types": "connection.refreshed"}, "types"),
        ],
    )
    def test_bad_parameters_are_400(self, team, params, field):
        assert_error(reader_for(team.a).get(events_url(), params), 400, field=field)

    def test_each_workspace_has_its_own_stream_and_cursors(self, team):
        record(team.a, 1)
        record(team.b, 2)
        record(team.a, 3)
        acme = reader_for(team.a).get(events_url("acme")).json()["events"]
        globex = reader_for(team.b).get(events_url("globex")).json()["events"]
        assert [(e["cursor"], e["data"]["n"]) for e in acme] == [(1, 1), (2, 3)]
        assert [(e["cursor"], e["data"]["n"]) for e in globex] == [(1, 2)]


@pytest.mark.django_db
class TestAccess:
    def test_another_workspace_cannot_read_it(self, team, api):
        record(team.a, 1)
        assert_error(api.as_user(team.charlie).get(events_url("acme")), 404)
        assert_error(reader_for(team.b).get(events_url("acme")), 404)

    def test_it_needs_the_read_scope(self, team):
        assert_error(reader_for(team.a, scopes=("tokens",)).get(events_url()), 403, "read")

    def test_members_cannot_read_it_but_admins_can(self, team, api):
        assert_error(api.as_user(team.bob).get(events_url()), 403)
        assert api.as_user(team.alice).get(events_url()).status_code == 200

    def test_it_needs_a_caller(self, team, api):
        assert api.anonymous().get(events_url()).status_code in (401, 403)


@pytest.mark.django_db
class TestWhatIsInIt:
    def test_lifecycle_changes_are_in_it_and_routine_refreshes_are_not(self, team, acme_client):
        connection = connection_create(
            workspace=team.a, oauth_client=acme_client, name="Books", owner=team.alice, actor=Actor(user=team.alice)
        )
        for kind in (EventKind.AUTHORIZED, EventKind.REFRESHED, EventKind.REFRESH_FAILED, EventKind.RECOVERED):
            connection_event(connection, kind, f"{kind} happened.")
        connection.access_token = "access-token-never-in-events-Qw3"
        connection.save()
        connection_disconnect(workspace=team.a, connection=connection, actor=Actor(user=team.alice))
        body = reader_for(team.a).get(events_url()).json()
        assert [e["type"] for e in body["events"]] == [
            "connection.authorized",
            "connection.refresh_failed",
            "connection.recovered",
            "connection.revoked",
        ]
        revoked = body["events"][-1]["data"]
        assert revoked["connection"] == {
            "id": str(connection.id),
            "name": "Books",
            "status": "revoked",
            "oauth_client": str(acme_client.id),
        }
        assert revoked["detail"] == "Disconnected by alice@example.com."
        assert "access-token-never-in-events-Qw3" not in json.dumps(body)

    def test_created_and_failed_authorizations_are_not_in_it(self, team, acme_client):
        connection = connection_create(
            workspace=team.a, oauth_client=acme_client, name="Books", owner=team.alice, actor=Actor(user=team.alice)
        )
        connection_event(connection, EventKind.AUTHORIZATION_FAILED, "Refused.")
        assert reader_for(team.a).get(events_url()).json()["events"] == []


@pytest.mark.django_db
class TestUpkeep:
    def test_events_a_crash_left_unpublished_are_published_by_the_sweep(self, team):
        old = timezone.now() - timedelta(seconds=30)
        WorkspaceEvent.objects.create(workspace=team.a, type="connection.revoked", data={}, created_at=old)
        assert stream.workspace_events_publish_stale() == 1
        assert WorkspaceEvent.objects.get().cursor == 1
        assert stream.workspace_events_publish_stale() == 0

    def test_old_events_are_purged_and_cursors_go_on_increasing(self, team, settings):
        for n in range(3):
            record(team.a, n)
        stream.workspace_events_publish(workspace_id=team.a.id)
        WorkspaceEvent.objects.update(created_at=timezone.now() - timedelta(days=31))
        assert stream.workspace_events_purge(older_than_days=settings.WORKSPACE_EVENT_RETENTION_DAYS) == 3
        record(team.a, 9)
        [event] = reader_for(team.a).get(events_url()).json()["events"]
        assert (event["cursor"], event["data"]["n"]) == (4, 9)

    def test_events_are_kept_thirty_days_by_default(self, settings):
        assert settings.WORKSPACE_EVENT_RETENTION_DAYS == 30
