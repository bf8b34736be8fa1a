"""Support pauses and resumes refreshing: a paused connection is never swept nor
refreshed on demand, the token API serves a valid token and then says why it
has none, and resuming plans the next refresh from the provider's policy.

Against the Exact Online emulator with 40 s tokens and a 30 s window.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import STAFF_LABEL, Actor
from common.errors import ConflictError
from connections import refresh
from connections.models import Connection, EventKind, Status
from connections.services import connection_pause, connection_refresh_now, connection_resume
from connections.tasks import refresh_connections
from connections.tokens import next_refresh_due
from tests.refresh.helpers import compressed_exact, connect, refreshes, token_url, tokens_client

pytestmark = compressed_exact


@pytest.fixture
def staff(support_user):
    return Actor(user=support_user, staff=True)


@pytest.fixture
def due(team, exact_client, exact):
    """A connection with 20 s left: due, inside the provider's window."""
    return connect(exact_client, exact, name="Due", owner=team.alice, remaining=20)


def reload(connection: Connection) -> Connection:
    return Connection.objects.select_related("oauth_client").get(pk=connection.pk)


def test_a_paused_connection_is_not_swept(team, due, staff, exact):
    connection_pause(workspace=team.a, connection=due, actor=staff)

    ids, _ = refresh.claim_due(now=timezone.now() + timedelta(hours=1))

    assert due.id not in ids
    paused = reload(due)
    assert paused.refresh_due_at is None and paused.refresh_paused_at is not None
    assert paused.status == Status.ACTIVE  # the status stays what it was: paused is a flag beside it
    assert refreshes(exact) == 0


def test_a_claim_made_before_the_pause_refreshes_nothing(team, due, staff, exact):
    ids, lease = refresh.claim_due()
    assert due.id in ids
    connection_pause(workspace=team.a, connection=due, actor=staff)

    result = refresh.refresh_claimed(connection_id=due.id, lease_token=lease, batch=refresh.Batch())

    assert result.outcome == refresh.Outcome.SKIPPED and "paused" in result.message
    assert refreshes(exact) == 0 and reload(due).lease_token is None


def test_the_token_api_serves_a_valid_token_while_paused_and_then_says_why_not(team, due, staff, exact):
    connection_pause(workspace=team.a, connection=due, actor=staff)
    tokens = tokens_client(team.a)

    valid = tokens.get(token_url(due))  # due, but not refreshed on demand: paused
    Connection.objects.filter(pk=due.pk).update(access_token_expires_at=timezone.now() - timedelta(seconds=1))
    expired = tokens.get(token_url(due))

    assert valid.status_code == 200 and valid.json()["access_token"] == due.access_token
    assert expired.status_code == 409
    assert expired.json()["error"]["code"] == "refresh_paused"
    assert "paused by Tokenkeeper support" in expired.json()["error"]["message"]
    assert refreshes(exact) == 0


def test_refresh_now_is_refused_while_paused(team, due, staff, exact):
    connection_pause(workspace=team.a, connection=due, actor=staff)

    with pytest.raises(ConflictError, match="Resume it first"):
        connection_refresh_now(workspace=team.a, connection=due, actor=Actor(user=team.alice))
    assert refreshes(exact) == 0


def test_resuming_plans_the_next_refresh_from_the_providers_policy(team, due, staff, exact):
    expected = reload(due).refresh_due_at
    connection_pause(workspace=team.a, connection=due, actor=staff)

    resumed = connection_resume(workspace=team.a, connection=due, actor=staff)
    ids, lease = refresh.claim_due()

    assert resumed.refresh_paused_at is None and resumed.refresh_due_at == expected
    assert due.id in ids
    assert refresh_connections([str(due.id)], str(lease)) == {refresh.Outcome.REFRESHED: 1}
    assert refreshes(exact, "ok") == 1
    assert list(due.events.values_list("kind", flat=True)[:3]) == [
        EventKind.REFRESHED,
        EventKind.REFRESH_RESUMED,
        EventKind.REFRESH_PAUSED,
    ]
    pause, resume = AuditEvent.objects.filter(action__startswith="connection.refresh_").order_by("created_at")
    assert (pause.action, resume.action) == ("connection.refresh_paused", "connection.refresh_resumed")
    assert pause.actor_label == resume.actor_label == STAFF_LABEL


def test_a_reconnect_while_paused_stays_paused(team, due, staff):
    """New tokens (a reconnect) plan no refresh while paused: tokens.next_refresh_due says none."""
    connection_pause(workspace=team.a, connection=due, actor=staff)

    assert next_refresh_due(reload(due)) is None


def test_pausing_twice_or_resuming_an_unpaused_connection_is_refused(team, due, staff):
    with pytest.raises(ConflictError, match="not paused"):
        connection_resume(workspace=team.a, connection=due, actor=staff)
    connection_pause(workspace=team.a, connection=due, actor=staff)
    with pytest.raises(ConflictError, match="already paused"):
        connection_pause(workspace=team.a, connection=due, actor=staff)


def test_the_connection_api_says_refreshing_is_paused(team, due, staff, api):
    url = f"/api/v1/workspaces/acme/connections/{due.id}/"
    assert api.as_user(team.alice).get(url).json()["refresh_paused_at"] is None

    connection_pause(workspace=team.a, connection=due, actor=staff)

    body = api.as_user(team.alice).get(url).json()
    assert body["refresh_paused_at"] is not None and body["refresh_due_at"] is None
