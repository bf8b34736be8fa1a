"""Exact Online keeps one refresh-token chain per (app, Exact user): when the
same user authorizes the same app again, the older chain dies. Tokenkeeper
handles it at the callback, against the emulator's consent page."""

import pytest
from django.core import mail
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import Actor
from connections.models import Connection, EventKind, Status
from connections.refresh import claim_due
from connections.services import connection_create
from connections.tasks import refresh_connections
from tests.connections.helpers import api_url, exact_consent, finish_flow, start_flow
from tests.fixtures.connections import make_exact_client
from tests.refresh.helpers import token_url, tokens_client

pytestmark = pytest.mark.django_db


def connect(browser, connection, username="jan@example.nl"):
    return finish_flow(browser, exact_consent(start_flow(browser, connection), username=username))


def new_connection(client, name, owner):
    return connection_create(
        workspace=client.workspace, oauth_client=client, name=name, owner=owner, actor=Actor(user=owner)
    )


def requests_of_grant(exact, grant_id, since) -> list:
    return [r for r in exact.token_requests if r.grant_id == grant_id and r.time >= since]


@pytest.fixture
def jansen(people, team, exact_client, exact):
    """Alice's connection, authorized at Exact as jan."""
    connection = new_connection(exact_client, "Jansen", team.alice)
    connect(people.alice, connection)
    connection.refresh_from_db()
    assert connection.status == Status.ACTIVE
    return connection


def test_the_same_account_again_in_the_same_workspace_reconnects_the_existing_connection(
    people, team, exact_client, exact, jansen
):
    old_grant = exact.grant_for(jansen.refresh_token)
    duplicate = new_connection(exact_client, "Jansen again", team.alice)
    since = exact.now()

    response = connect(people.alice, duplicate)

    assert not Connection.objects.filter(pk=duplicate.pk).exists()  # the pending duplicate is gone
    jansen_now = Connection.objects.get(pk=jansen.pk)
    assert jansen_now.status == Status.ACTIVE
    assert jansen_now.refresh_token != jansen.refresh_token
    assert exact.grant_for(jansen_now.refresh_token).id != old_grant.id
    assert response.request["PATH_INFO"] == f"/w/acme/connections/{jansen.pk}/"
    text = response.content.decode()
    assert "already connected here as “Jansen”" in text and "“Jansen again” was removed" in text
    assert jansen_now.events.filter(kind=EventKind.RECONNECTED).count() == 1
    assert AuditEvent.objects.filter(action="connection.deleted", target_id=str(duplicate.pk)).exists()

    # The superseded chain is never used again.
    Connection.objects.filter(pk=jansen.pk).update(refresh_due_at=timezone.now())
    ids, lease = claim_due()
    refresh_connections([str(i) for i in ids], str(lease))
    assert requests_of_grant(exact, old_grant.id, since) == []


def test_the_same_account_in_another_workspace_ends_the_older_connection_at_once(
    people, team, exact, jansen, django_capture_on_commit_callbacks
):
    old_grant = exact.grant_for(jansen.refresh_token)
    globex_client = make_exact_client(team.b, team.charlie, exact)
    theirs = new_connection(globex_client, "Jan at Globex", team.charlie)
    since = exact.now()

    with django_capture_on_commit_callbacks(execute=True):
        connect(people.charlie, theirs)

    theirs.refresh_from_db()
    assert theirs.status == Status.ACTIVE  # the new authorization is kept
    jansen.refresh_from_db()
    assert jansen.status == Status.NEEDS_REAUTH
    assert "authorized this app again elsewhere" in jansen.last_error
    assert "Globex" not in jansen.last_error
    assert (jansen.access_token, jansen.refresh_token, jansen.refresh_due_at) == ("", "", None)
    assert jansen.events.filter(kind=EventKind.NEEDS_REAUTH).count() == 1
    assert sorted(m.to[0] for m in mail.outbox) == ["alice@example.com"]  # owner and Acme's admin, once
    assert "Globex" not in mail.outbox[0].body

    # Nothing in Acme sends the dead chain's refresh token: not the sweeper, not the token API.
    ids, _ = claim_due()
    assert jansen.pk not in ids
    response = tokens_client(team.a).get(token_url(jansen))
    assert response.status_code == 409 and response.json()["error"]["code"] == "needs_reauth"
    assert requests_of_grant(exact, old_grant.id, since) == []


def test_another_account_in_the_same_workspace_is_a_separate_connection(people, team, exact_client, exact, jansen):
    piet = new_connection(exact_client, "Pieterse", team.alice)

    connect(people.alice, piet, username="piet@example.nl")

    assert Connection.objects.filter(status=Status.ACTIVE).count() == 2
    jansen.refresh_from_db()
    assert jansen.status == Status.ACTIVE


def test_a_reconnect_of_another_connection_as_the_same_account_ends_the_older_one(
    people, team, exact_client, exact, jansen, api
):
    piet = new_connection(exact_client, "Pieterse", team.alice)
    connect(people.alice, piet, username="piet@example.nl")

    connect(people.alice, piet)  # reconnected, this time as jan

    piet.refresh_from_db()
    jansen.refresh_from_db()
    assert piet.status == Status.ACTIVE and piet.account_email == "jan@example.nl"
    assert jansen.status == Status.NEEDS_REAUTH
    assert "for the connection “Pieterse” in this workspace" in jansen.last_error
    body = api.as_user(team.alice).get(api_url(jansen)).json()
    assert body["status"] == "needs_reauth"
