"""The token API (``GET …/token``, ``tokens`` scope) and an admin's ``POST …/refresh``,
against the Exact Online emulator with 40 s tokens and a 30 s window."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from audit.services import Actor
from connections.models import Connection, EventKind, Status
from connections.services import connection_create, connection_disconnect
from tests.refresh.helpers import (
    compressed_exact,
    connect,
    refresh_url,
    refreshes,
    token_url,
    tokens_client,
)

pytestmark = compressed_exact


@pytest.fixture
def fresh(team, exact_client, exact):
    """Alice's connection with 38 s left: valid, not due."""
    return connect(exact_client, exact, name="Fresh", owner=team.alice, remaining=38)


@pytest.fixture
def due(team, exact_client, exact):
    """Bob's connection with 20 s left: due, inside the provider's window."""
    return connect(exact_client, exact, name="Due", owner=team.bob, remaining=20)


@pytest.fixture
def tokens(team):
    return tokens_client(team.a)


def error(response) -> dict:
    return response.json()["error"]


def expires_at(body) -> datetime:
    return datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))


# --- Serving a valid token --------------------------------------------------------------------


def test_a_valid_token_is_served_from_the_database_in_two_queries(fresh, tokens, exact, django_assert_max_num_queries):
    tokens.get(token_url(fresh))  # the key's last use is now recorded: no write for a minute

    with django_assert_max_num_queries(2):
        response = tokens.get(token_url(fresh))

    assert response.status_code == 200
    body = response.json()
    assert body["access_token"] == fresh.access_token
    assert body["token_type"] == "bearer"
    assert expires_at(body) == fresh.access_token_expires_at
    assert 30 < body["expires_in"] <= 38
    assert response["Cache-Control"] == "no-store"
    assert exact.is_access_token_valid(body["access_token"])
    assert exact.count() == 0


def test_a_due_token_is_refreshed_on_demand_before_it_is_served(due, tokens, exact):
    response = tokens.get(token_url(due))

    assert response.status_code == 200
    body = response.json()
    assert body["access_token"] != due.access_token
    assert exact.is_access_token_valid(body["access_token"])
    assert expires_at(body) > timezone.now() + timedelta(seconds=35)
    assert refreshes(exact, "ok") == 1 and 0 < exact.refresh_leads[0] <= 30
    assert due.events.filter(kind=EventKind.REFRESHED, detail__contains="on demand").count() == 1

    assert tokens.get(token_url(due)).json()["access_token"] == body["access_token"]
    assert refreshes(exact) == 1


def test_a_due_token_whose_refresh_fails_is_still_served_while_valid(due, tokens, exact):
    exact.fail_next(1, status=500)

    response = tokens.get(token_url(due))

    assert response.status_code == 200
    assert response.json()["access_token"] == due.access_token
    due.refresh_from_db()
    assert due.status == Status.REFRESH_FAILING


def test_an_expired_token_whose_retry_failed_moments_ago_is_a_503_with_retry_after(due, tokens, exact):
    now = timezone.now()
    Connection.objects.filter(pk=due.pk).update(
        status=Status.REFRESH_FAILING,
        access_token_expires_at=now - timedelta(seconds=1),
        refresh_due_at=now + timedelta(seconds=30),
        last_error="The provider answered HTTP 500 (server_error).",
        last_error_at=now,
    )

    response = tokens.get(token_url(due))

    assert response.status_code == 503
    assert error(response)["code"] == "refresh_failing"
    assert "HTTP 500" in error(response)["message"]
    assert 25 <= int(response["Retry-After"]) <= 30
    assert exact.count() == 0  # no second attempt seconds after a failure


# --- Connections that cannot give a token: 409 with the reason ------------------------------


def test_a_connection_that_needs_reauth_is_a_409_that_says_why(due, tokens, exact):
    exact.revoke_all()
    tokens.get(token_url(due))  # the on-demand refresh finds out

    response = tokens.get(token_url(due))

    assert response.status_code == 409
    body = response.json()
    assert body["error"]["code"] == "needs_reauth"
    assert "re-authorization" in body["error"]["message"] and "invalid_grant" in body["error"]["message"]
    assert refreshes(exact) == 1


def test_a_pending_connection_is_a_409(team, exact_client, tokens):
    pending = connection_create(
        workspace=team.a, oauth_client=exact_client, name="Pending", owner=team.alice, actor=Actor(user=team.alice)
    )

    response = tokens.get(token_url(pending))

    assert response.status_code == 409
    assert error(response)["code"] == "pending"
    assert "not authorized yet" in error(response)["message"]


def test_a_disconnected_connection_is_a_409(team, fresh, tokens):
    connection_disconnect(workspace=team.a, connection=fresh, actor=Actor(user=team.alice))

    response = tokens.get(token_url(fresh))

    assert response.status_code == 409
    assert error(response)["code"] == "revoked"
    assert "disconnected" in error(response)["message"]


# --- Who may fetch a token --------------------------------------------------------------------


def test_a_key_without_the_tokens_scope_is_refused(team, fresh):
    response = tokens_client(team.a, scopes=("read", "write")).get(token_url(fresh))
    assert response.status_code == 403
    assert "tokens" in error(response)["message"]


def test_another_workspaces_key_gets_404(team, fresh):
    assert tokens_client(team.b, scopes=("read", "write", "tokens")).get(token_url(fresh)).status_code == 404


def test_a_member_may_fetch_a_token_for_their_own_connection_only(team, fresh, due, api):
    bob = api.as_user(team.bob)
    assert bob.get(token_url(due)).status_code == 200
    assert bob.get(token_url(fresh)).status_code == 404


# --- An admin's "refresh now" ---------------------------------------------------------------------


def test_refresh_now_inside_the_window_refreshes_at_once(team, due, api, exact):
    response = api.as_user(team.alice).post(refresh_url(due))

    assert response.status_code == 200
    assert response.json()["refresh_result"] == "refreshed"
    assert response.json()["status"] == "active"
    assert refreshes(exact, "ok") == 1


def test_refresh_now_before_the_window_opens_is_scheduled_for_when_it_does(team, fresh, api, exact):
    response = api.as_user(team.alice).post(refresh_url(fresh))

    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "scheduled"
    refresh_at = datetime.fromisoformat(body["refresh_at"].replace("Z", "+00:00"))
    assert refresh_at == fresh.access_token_expires_at - timedelta(seconds=25)
    assert "30 s" in body["detail"]
    assert exact.count() == 0  # no early request burns the provider's error budget
    fresh.refresh_from_db()
    assert fresh.refresh_due_at == refresh_at


def test_refresh_now_with_a_write_key(team, due, exact):
    response = tokens_client(team.a, scopes=("write",)).post(refresh_url(due))
    assert response.status_code == 200
    assert refreshes(exact, "ok") == 1


@pytest.mark.parametrize("scopes", [("tokens",), ("read", "tokens")])
def test_refresh_now_needs_a_key_with_write(team, due, exact, scopes):
    response = tokens_client(team.a, scopes=scopes).post(refresh_url(due))
    assert response.status_code == 403
    assert exact.count() == 0


def test_refresh_now_is_for_admins_not_members(team, due, api, exact):
    response = api.as_user(team.bob).post(refresh_url(due))  # Bob owns it but is a member
    assert response.status_code == 403
    assert exact.count() == 0


def test_refresh_now_of_a_connection_that_needs_reauth_is_a_409(team, due, api, exact):
    Connection.objects.filter(pk=due.pk).update(status=Status.NEEDS_REAUTH, refresh_due_at=None)
    response = api.as_user(team.alice).post(refresh_url(due))
    assert response.status_code == 409
    assert error(response)["code"] == "not_refreshable"
    assert "Reconnect" in error(response)["message"]


def test_refresh_now_from_another_workspace_is_a_404(team, due, exact):
    assert tokens_client(team.b, scopes=("read", "write", "tokens")).post(refresh_url(due)).status_code == 404
    assert exact.count() == 0
