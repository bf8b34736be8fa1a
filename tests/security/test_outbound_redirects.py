"""Token and identity calls never follow a redirect: the secrets go only to the configured URL.

A provider (or whoever took over its token endpoint) answers 307 pointing at
a second server. Tokenkeeper must not repeat the request there — with a
client secret and an authorization code, a refresh token, or an access token
in it — and must say clearly what happened.
"""

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from audit.services import Actor
from connections.models import Connection, ConnectionEvent, Status
from connections.refresh import claim_due
from connections.services import connection_create
from connections.tasks import refresh_connections
from oauthclients.services import oauth_client_create
from tests.security.recording_server import Answer, RecordingServer

CLIENT_SECRET = "client-secret-never-elsewhere-7Qm"
REFRESH_TOKEN = "refresh-token-never-elsewhere-3Xa"
ACCESS_TOKEN = "access-token-never-elsewhere-9Lp"
TOKENS = {"access_token": ACCESS_TOKEN, "refresh_token": "rt-2", "token_type": "bearer", "expires_in": 3600}


@pytest.fixture
def elsewhere():
    """Where the redirects point: it must never be called."""
    with RecordingServer({"/": Answer(200, TOKENS)}) as server:
        yield server


@pytest.fixture
def provider(elsewhere):
    routes = {
        "/token-redirects": Answer(307, "moved", {"Location": f"{elsewhere.url}/steal-token"}),
        "/token": Answer(200, TOKENS),
        "/me-redirects": Answer(302, "moved", {"Location": f"{elsewhere.url}/steal-me"}),
    }
    with RecordingServer(routes) as server:
        yield server


def make_connection(team, provider, *, token_path: str, identity_path: str = "") -> Connection:
    client = oauth_client_create(
        workspace=team.a,
        actor=Actor(user=team.alice),
        provider="generic",
        name="Redirecting provider",
        client_id="tokenkeeper",
        client_secret=CLIENT_SECRET,
        authorization_url=f"{provider.url}/authorize",
        token_url=f"{provider.url}{token_path}",
        identity_url=f"{provider.url}{identity_path}" if identity_path else "",
        token_endpoint_auth_method="client_secret_post",
        use_pkce=True,
        access_token_expires_in=3_600_000,
        refresh_token_expires_in=0,
    )
    return connection_create(
        workspace=team.a, oauth_client=client, name="Books", owner=team.alice, actor=Actor(user=team.alice)
    )


def authorize(team, connection) -> Client:
    """Alice clicks Connect, consents, and her browser comes back with a code."""
    browser = Client()
    browser.force_login(team.alice)
    response = browser.post(f"/w/acme/connections/{connection.id}/connect/")
    state = parse_qs(urlsplit(response["Location"]).query)["state"][0]
    response = browser.get("/oauth2/callback", {"code": "the-code", "state": state}, follow=True)
    assert response.status_code == 200
    return response


def test_a_token_endpoint_redirect_during_the_code_exchange_is_not_followed(team, provider, elsewhere):
    connection = make_connection(team, provider, token_path="/token-redirects")

    page = authorize(team, connection).content.decode()

    assert [(m, p) for m, p, _ in provider.requests] == [("POST", "/token-redirects")]
    assert CLIENT_SECRET in provider.requests[0][2]  # client_secret_post: the configured URL got it
    assert elsewhere.requests == []
    connection.refresh_from_db()
    message = (
        f"The token endpoint answered with a redirect (HTTP 307) to {elsewhere.url}/steal-token; "
        "Tokenkeeper does not follow redirects."
    )
    assert message in connection.last_error
    assert message in page
    assert connection.status == Status.PENDING and connection.access_token == ""


def test_an_identity_endpoint_redirect_is_not_followed_and_no_token_is_stored(team, provider, elsewhere):
    connection = make_connection(team, provider, token_path="/token", identity_path="/me-redirects")

    authorize(team, connection)

    assert [(m, p) for m, p, _ in provider.requests] == [("POST", "/token"), ("GET", "/me-redirects")]
    assert elsewhere.requests == []
    connection.refresh_from_db()
    assert (
        f"The identity endpoint answered with a redirect (HTTP 302) to {elsewhere.url}/steal-me; "
        "Tokenkeeper does not follow redirects."
    ) in connection.last_error
    assert connection.access_token == ""


def test_a_token_endpoint_redirect_during_a_refresh_is_a_transient_failure(team, provider, elsewhere):
    connection = make_connection(team, provider, token_path="/token-redirects")
    now = timezone.now()
    Connection.objects.filter(pk=connection.pk).update(
        status=Status.ACTIVE,
        access_token_expires_at=now + timedelta(seconds=20),
        refresh_due_at=now - timedelta(seconds=1),
    )
    connection.refresh_from_db()
    connection.access_token, connection.refresh_token = ACCESS_TOKEN, REFRESH_TOKEN
    connection.save()

    ids, lease = claim_due()  # the sweeper, then the task a worker runs
    assert refresh_connections([str(i) for i in ids], str(lease)) == {"failed": 1}

    assert [p for _, p, _ in provider.requests] == ["/token-redirects"]
    assert REFRESH_TOKEN in provider.requests[0][2]
    assert elsewhere.requests == []
    connection.refresh_from_db()
    # Kept, retried later: a misconfigured endpoint does not destroy the connection.
    assert connection.status == Status.REFRESH_FAILING
    assert connection.refresh_token == REFRESH_TOKEN and connection.refresh_due_at > timezone.now()
    assert connection.last_error == (
        f"The token endpoint answered with a redirect (HTTP 307) to {elsewhere.url}/steal-token; "
        "Tokenkeeper does not follow redirects."
    )
    event = ConnectionEvent.objects.filter(connection=connection).latest("created_at")
    assert event.kind == "refresh_failed" and "does not follow redirects" in event.detail
