"""The workspace Overview: connections by status, what needs attention first, refresh-token
expiries, refreshes in the last 24 hours and their share inside the provider's window, and
the first-run checklist. Members see their own connections only."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.services import Actor
from connections import refresh, selectors
from connections.events import connection_event
from connections.models import Connection, ConnectionEvent, EventKind, Status
from connections.overview import first_run_steps
from connections.services import connection_create
from tests.factories import make_api_key
from tests.refresh.helpers import connect
from workspaces.models import ApiKey

pytestmark = pytest.mark.django_db


def make(team, client, name, status, owner=None, **fields) -> Connection:
    connection = connection_create(
        workspace=team.a, oauth_client=client, name=name, owner=owner or team.alice, actor=Actor(user=team.alice)
    )
    Connection.objects.filter(pk=connection.pk).update(status=status, **fields)
    connection.refresh_from_db()
    return connection


def membership(team, user):
    return team.a.memberships.get(user=user)


def test_counts_every_status_and_members_count_their_own(team, exact_client):
    make(team, exact_client, "A", Status.ACTIVE)
    make(team, exact_client, "B", Status.ACTIVE, owner=team.bob)
    make(team, exact_client, "C", Status.NEEDS_REAUTH)
    counts = selectors.status_counts(workspace=team.a, membership=membership(team, team.alice))
    assert counts == {"pending": 0, "active": 2, "refresh_failing": 0, "needs_reauth": 1, "revoked": 0}
    assert selectors.status_counts(workspace=team.a, membership=membership(team, team.bob))["active"] == 1
    assert sum(selectors.status_counts(workspace=team.b).values()) == 0


def test_needs_reauthorization_comes_before_refresh_failing(team, exact_client):
    now = timezone.now()
    make(team, exact_client, "Failing", Status.REFRESH_FAILING, last_error="HTTP 503", last_error_at=now)
    make(
        team,
        exact_client,
        "Broken",
        Status.NEEDS_REAUTH,
        last_error="invalid_grant",
        last_error_at=now - timedelta(hours=1),
    )
    make(team, exact_client, "Fine", Status.ACTIVE)
    names = [c.name for c in selectors.connections_needing_attention(workspace=team.a)]
    assert names == ["Broken", "Failing"]


def test_refresh_token_expiries_soonest_first(team, exact_client):
    now = timezone.now()
    make(team, exact_client, "Later", Status.ACTIVE, refresh_token_expires_at=now + timedelta(days=20))
    make(team, exact_client, "Sooner", Status.ACTIVE, refresh_token_expires_at=now + timedelta(days=2))
    make(team, exact_client, "Gone", Status.REVOKED, refresh_token_expires_at=now + timedelta(days=1))
    assert [c.name for c in selectors.refresh_tokens_expiring(workspace=team.a)] == ["Sooner", "Later"]


def test_refresh_figures_of_the_last_day(team, exact_client):
    connection = make(team, exact_client, "A", Status.ACTIVE)
    for in_window in (True, True, True, False):
        connection_event(connection, EventKind.REFRESHED, "Refreshed.", in_window=in_window)
    connection_event(connection, EventKind.REFRESHED, "Refreshed.")  # recorded before the window was
    connection_event(connection, EventKind.REFRESH_FAILED, "HTTP 503")
    old = connection_event(connection, EventKind.REFRESHED, "Refreshed.", in_window=False)
    ConnectionEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=25))
    other = make(team, exact_client, "Bob's", Status.ACTIVE, owner=team.bob)
    connection_event(other, EventKind.REFRESHED, "Refreshed.", in_window=True)

    stats = selectors.refresh_stats(workspace=team.a)
    assert (stats.refreshed, stats.measured, stats.in_window, stats.failed) == (6, 5, 4, 1)
    assert stats.in_window_percent == 80 and not stats.capped
    bobs = selectors.refresh_stats(workspace=team.a, membership=membership(team, team.bob))
    assert (bobs.refreshed, bobs.in_window_percent) == (1, 100)
    assert selectors.refresh_stats(workspace=team.b).refreshed == 0


def test_refresh_figures_read_a_bounded_number_of_events(team, exact_client, monkeypatch):
    monkeypatch.setattr(selectors, "REFRESH_STATS_CAP", 3)
    connection = make(team, exact_client, "A", Status.ACTIVE)
    for _ in range(5):
        connection_event(connection, EventKind.REFRESHED, "Refreshed.", in_window=True)
    stats = selectors.refresh_stats(workspace=team.a)
    assert stats.refreshed == 3 and stats.capped


def test_a_refresh_inside_exacts_window_says_so(team, exact, exact_client):
    connection = connect(exact_client, exact, name="Jansen", owner=team.alice, remaining=20)
    expiry = connection.access_token_expires_at
    assert refresh.refresh_forced(connection=connection).outcome == refresh.Outcome.REFRESHED
    event = ConnectionEvent.objects.get(connection=connection, kind=EventKind.REFRESHED)
    assert event.data["in_window"] is True
    assert event.data["previous_expires_at"] == expiry.isoformat()


def test_a_refresh_after_the_token_expired_is_not_in_the_window(team, exact, exact_client):
    connection = connect(exact_client, exact, name="Jansen", owner=team.alice, remaining=20)
    Connection.objects.filter(pk=connection.pk).update(access_token_expires_at=timezone.now() - timedelta(seconds=5))
    assert refresh.refresh_forced(connection=connection).outcome == refresh.Outcome.REFRESHED
    assert ConnectionEvent.objects.get(connection=connection, kind=EventKind.REFRESHED).data["in_window"] is False


def test_the_checklist_follows_the_first_steps(team, exact, exact_client):
    assert [s.done for s in first_run_steps(workspace=team.b)] == [False, False, False, False]
    assert [s.done for s in first_run_steps(workspace=team.a)] == [True, False, False, False]
    connect(exact_client, exact, name="Jansen", owner=team.alice, remaining=300)
    make_api_key(team.a, scopes=("read",))
    assert [s.done for s in first_run_steps(workspace=team.a)] == [True, True, False, False]
    make_api_key(team.a, scopes=("tokens",))
    assert [s.done for s in first_run_steps(workspace=team.a)] == [True, True, True, False]
    ApiKey.objects.filter(scopes__icontains="tokens").update(last_used_at=timezone.now())
    assert first_run_steps(workspace=team.a) == []  # done: the checklist goes away


def test_the_overview_page_for_an_admin_and_for_a_member(team, people, exact_client):
    make(team, exact_client, "Broken", Status.NEEDS_REAUTH, last_error="The provider refused the refresh token.")
    make(team, exact_client, "Bob's books", Status.ACTIVE, owner=team.bob)

    admin = people.alice.get("/w/acme/").content.decode()
    assert 'id="first-run"' in admin and "Register an OAuth client" in admin
    assert "The provider refused the refresh token." in admin and "Reconnect Broken" in admin
    assert 'href="/w/acme/connections/?status=needs_reauth"' in admin

    member = people.bob.get("/w/acme/").content.decode()
    assert 'id="first-run"' not in member and "Broken" not in member
    assert "Nothing needs attention" in member
    assert "<strong>member</strong> of this workspace." in member
