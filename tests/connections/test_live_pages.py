"""The connection pages' live parts (htmx polls), "Refresh now", and what the page says after a disconnect."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import Actor
from connections.events import connection_event
from connections.models import Connection, EventKind, Status
from connections.services import connection_disconnect
from connections.timeline import connection_timeline
from tests.connections.helpers import detail_url, exact_consent, path_and_query, start_flow
from tests.refresh.helpers import connect

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def test_the_list_polls_its_rows_only(people, exact_connection):
    response = people.alice.get("/w/acme/connections/?partial=rows&status=pending", **HTMX)
    page = response.content.decode()
    assert page.lstrip().startswith('<tbody id="connection-rows"')
    assert "Jansen administratie" in page and "<html" not in page
    assert 'hx-get="/w/acme/connections/?partial=rows&amp;status=pending"' in page
    # Without htmx, the same address is the whole page.
    assert "<html" in people.alice.get("/w/acme/connections/?partial=rows").content.decode()


def test_the_list_filters_by_status(people, team, exact_client, exact_connection):
    page = people.alice.get("/w/acme/connections/?status=active").content.decode()
    assert "No connections with this status." in page and "Jansen administratie" not in page
    assert 'href="?status=pending" aria-current="page"' not in page
    assert "Pending (1)" in page


def test_the_connection_page_polls_its_live_part_with_the_status_badge(people, exact_connection):
    page = people.alice.get(f"{detail_url(exact_connection)}?partial=live", **HTMX).content.decode()
    assert page.lstrip().startswith('<div id="connection-live"')
    assert 'id="connection-status" aria-live="polite" hx-swap-oob="true"' in page
    assert 'role="alert"' not in page  # a poll must not announce the last error again and again


def test_a_poll_without_a_session_reloads_the_page(people, exact_connection):
    response = people.anonymous.get(f"{detail_url(exact_connection)}?partial=live", **HTMX)
    assert response.status_code == 200 and response["HX-Refresh"] == "true"


def test_strangers_poll_nothing(people, exact_connection):
    assert people.charlie.get(f"{detail_url(exact_connection)}?partial=live", **HTMX).status_code == 404
    assert people.bob.get(f"{detail_url(exact_connection)}?partial=live", **HTMX).status_code == 404


def test_refresh_now_inside_exacts_window_refreshes(people, team, exact, exact_client):
    connection = connect(exact_client, exact, name="Jansen", owner=team.alice, remaining=20)
    response = people.alice.post(f"{detail_url(connection)}refresh/", follow=True)
    assert "Refreshed: the new access token is valid until" in response.content.decode()
    assert AuditEvent.objects.filter(action="connection.refresh_forced").exists()


def test_refresh_now_before_exacts_window_is_scheduled(people, team, exact, exact_client):
    connection = connect(exact_client, exact, name="Jansen", owner=team.alice, remaining=300)
    response = people.alice.post(f"{detail_url(connection)}refresh/", follow=True)
    page = response.content.decode()
    assert "Refresh scheduled." in page and "accepts a refresh only in the last 30 s before expiry" in page
    assert exact.count(grant_type="refresh_token") == 0


def test_refresh_now_is_for_admins(people, team, exact, exact_client):
    connection = connect(exact_client, exact, name="Bob's", owner=team.bob, remaining=20)
    assert people.bob.post(f"{detail_url(connection)}refresh/").status_code == 403
    assert 'id="refresh-button"' not in people.bob.get(detail_url(connection)).content.decode()
    assert exact.count(grant_type="refresh_token") == 0


def test_refresh_now_of_a_pending_connection_says_why_not(people, exact_connection):
    response = people.alice.post(f"{detail_url(exact_connection)}refresh/", follow=True)
    assert "The connection is pending. Reconnect it instead." in response.content.decode()


def test_after_a_disconnect_the_page_says_when_not_the_old_connected_time(people, team, exact, exact_client):
    connection = connect(exact_client, exact, name="Jansen", owner=team.alice, remaining=300)
    connection_disconnect(workspace=team.a, connection=connection, actor=Actor(user=team.alice))
    page = people.alice.get(detail_url(connection)).content.decode()
    assert 'id="disconnected"' in page and 'id="connected"' not in page
    assert ">Reconnect</button>" in page and "Refresh now" not in page


def test_the_client_and_its_provider_are_shown_apart(people, exact_connection):
    page = people.alice.get(detail_url(exact_connection)).content.decode()
    assert "Exact Online NL</a></dd>" in page and "<dt>Provider</dt><dd>Exact Online (nl)</dd>" in page


def test_the_timeline_marks_refreshes_and_failures_in_time(team, exact_connection):
    now = timezone.now()
    for minutes, kind in ((50, EventKind.AUTHORIZED), (30, EventKind.REFRESHED), (20, EventKind.REFRESH_FAILED)):
        event = connection_event(exact_connection, kind, "x")
        type(event).objects.filter(pk=event.pk).update(created_at=now - timedelta(minutes=minutes))
    Connection.objects.filter(pk=exact_connection.pk).update(status=Status.ACTIVE)

    timeline = connection_timeline(exact_connection, now=now)

    marks = [(m.css, m.x) for m in timeline.marks]
    assert [css for css, _ in marks] == ["auth", "ok", "failed", "other"]  # "other": the creation, just now
    assert marks[0][1] < marks[1][1] < marks[2][1] < marks[3][1]
    assert timeline.summary == "In the last 52 minutes: 1 refresh, 1 failure."
    assert all(timeline.left + 20 <= t.x <= timeline.right - 20 for t in timeline.ticks)


def test_an_authorization_through_the_callback_records_the_browsers_address(people, exact_connection):
    callback = exact_consent(start_flow(people.alice, exact_connection))
    people.alice.get(path_and_query(callback), REMOTE_ADDR="203.0.113.9")
    event = AuditEvent.objects.get(action="connection.authorized")
    assert (event.actor_label, event.ip_address) == ("alice@example.com", "203.0.113.9")
