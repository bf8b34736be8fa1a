"""A callback that is not this browser's changes nothing; the right browser can still finish."""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from audit.services import Actor
from connections.models import AuthorizationState, ConnectionEvent, Status
from connections.services import connection_create
from oauthclients.services import oauth_client_create
from tests.security.recording_server import Answer, RecordingServer

TOKENS = {"access_token": "at-1", "refresh_token": "rt-1", "token_type": "bearer", "expires_in": 3600}


@pytest.fixture
def provider():
    with RecordingServer({"/token": Answer(200, TOKENS)}) as server:
        yield server


@pytest.fixture
def connection(team, provider):
    client = oauth_client_create(
        workspace=team.a,
        actor=Actor(user=team.alice),
        provider="generic",
        name="Provider",
        client_id="tokenkeeper",
        client_secret="client-secret",
        authorization_url=f"{provider.url}/authorize",
        token_url=f"{provider.url}/token",
        access_token_expires_in=3_600_000,
        refresh_token_expires_in=0,
    )
    return connection_create(
        workspace=team.a, oauth_client=client, name="Books", owner=team.alice, actor=Actor(user=team.alice)
    )


def browser_of(user) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


def unchanged(connection) -> tuple:
    connection.refresh_from_db()
    events = list(ConnectionEvent.objects.filter(connection=connection).values_list("kind", flat=True))
    state = AuthorizationState.objects.get(connection=connection)
    return connection.status, connection.last_error, connection.last_error_at, events, state.used_at


@pytest.mark.parametrize("who", ["alice in another browser", "bob", "charlie of another workspace", "anonymous"])
def test_a_callback_from_another_browser_changes_nothing(team, provider, connection, who):
    alice = browser_of(team.alice)
    authorize_url = alice.post(f"/w/acme/connections/{connection.id}/connect/")["Location"]
    callback = {"code": "the-code", "state": parse_qs(urlsplit(authorize_url).query)["state"][0]}
    before = unchanged(connection)
    other = {
        "alice in another browser": browser_of(team.alice),
        "bob": browser_of(team.bob),
        "charlie of another workspace": browser_of(team.charlie),
        "anonymous": Client(),
    }[who]

    response = other.get("/oauth2/callback", callback, follow=True)

    assert "This authorization was started in another browser session" in response.content.decode()
    assert unchanged(connection) == before  # no error, no event, the state still unused
    assert before[1] == "" and before[4] is None
    assert provider.requests == []  # the code was not exchanged

    # The browser that started the flow finishes it.
    alice.get("/oauth2/callback", callback)
    connection.refresh_from_db()
    assert connection.status == Status.ACTIVE and connection.access_token == "at-1"


def test_a_replayed_callback_changes_nothing(team, provider, connection):
    alice = browser_of(team.alice)
    authorize_url = alice.post(f"/w/acme/connections/{connection.id}/connect/")["Location"]
    callback = {"code": "the-code", "state": parse_qs(urlsplit(authorize_url).query)["state"][0]}
    alice.get("/oauth2/callback", callback)
    before = unchanged(connection)

    response = alice.get("/oauth2/callback", callback, follow=True)

    assert "This authorization response was already used" in response.content.decode()
    assert unchanged(connection) == before
    assert before[0] == Status.ACTIVE and before[1] == ""
    assert len(provider.requests) == 1
