"""The same flow against a standard OAuth 2.0 server: django-oauth-toolkit, PKCE required."""

import base64
import hashlib
from datetime import timedelta
from unittest import mock
from urllib.parse import parse_qs

import pytest
import requests
from django.utils import timezone

from audit.services import Actor
from connections.models import AuthorizationState, Connection, Status
from connections.services import connection_create
from tests.connections.helpers import (
    api_url,
    detail_url,
    dot_consent,
    dot_session,
    finish_flow,
    query_of,
    raw_rows,
    start_flow,
)
from tests.fixtures.connections import make_dot_client
from tests.fixtures.peers import DOT_ACCESS_LIFETIME

pytestmark = pytest.mark.django_db


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def new_connection(team, client, name="DOT account", owner=None):
    owner = owner or team.alice
    return connection_create(workspace=team.a, oauth_client=client, name=name, owner=owner, actor=Actor(user=owner))


class TokenRequestSpy:
    """Records what Tokenkeeper sends to ``url`` (the real request still goes out)."""

    def __init__(self, url: str):
        self.url, self.sent = url, []

    def __enter__(self):
        real_send = requests.Session.send

        def send(session, request, **kwargs):
            if request.url == self.url:
                self.sent.append(request)
            return real_send(session, request, **kwargs)

        self._patch = mock.patch.object(requests.Session, "send", send)
        self._patch.start()
        return self

    def __exit__(self, *exc):
        self._patch.stop()


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_connect_at_dot_with_pkce(people, dot, team, settings, auth_method):
    client = make_dot_client(team.a, team.alice, dot, auth_method=auth_method)
    connection = new_connection(team, client)

    authorize = start_flow(people.alice, connection)
    params = query_of(authorize)
    assert authorize.startswith(dot.authorization_url + "?")
    assert params["client_id"] == dot.client_id and params["response_type"] == "code"
    assert params["redirect_uri"] == f"{settings.PUBLIC_BASE_URL}/oauth2/callback"
    assert params["scope"] == "read write"
    assert params["code_challenge_method"] == "S256"
    verifier = AuthorizationState.objects.get().code_verifier
    assert params["code_challenge"] == s256(verifier)
    assert verifier not in raw_rows("connections_authorizationstate")  # the verifier is encrypted at rest

    callback = dot_consent(dot, authorize)
    before = timezone.now()
    with TokenRequestSpy(dot.token_url) as spy:
        response = finish_flow(people.alice, callback)
    after = timezone.now()

    assert response.redirect_chain == [(detail_url(connection), 302)]
    assert "is connected as alice and ready to use" in response.content.decode()
    connection = Connection.objects.get(pk=connection.pk)
    assert connection.status == Status.ACTIVE
    assert (connection.account_id != "", connection.account_name, connection.account_email) == (
        True,
        "alice",
        "alice@example.com",
    )
    assert connection.granted_scopes == "read write"
    assert connection.token_type == "Bearer"
    # expires_in came as an integer, and wins over the client's configured 3600 s
    assert connection.access_token_lifetime == DOT_ACCESS_LIFETIME
    assert (
        before + timedelta(seconds=DOT_ACCESS_LIFETIME)
        <= connection.access_token_expires_at
        <= after + timedelta(seconds=DOT_ACCESS_LIFETIME)
    )
    # Refresh-token lifetime configured as 0: never expires
    assert connection.refresh_token_expires_at is None
    assert connection.access_token and connection.refresh_token

    [exchange] = spy.sent
    body = {k: v[0] for k, v in parse_qs(exchange.body).items()}
    assert body["grant_type"] == "authorization_code" and body["code_verifier"] == verifier
    assert body["redirect_uri"] == f"{settings.PUBLIC_BASE_URL}/oauth2/callback"
    if auth_method == "client_secret_basic":
        expected = base64.b64encode(f"{dot.client_id}:{dot.client_secret}".encode()).decode()
        assert exchange.headers["Authorization"] == f"Basic {expected}"
        assert "client_secret" not in body
    else:
        assert "Authorization" not in exchange.headers
        assert (body["client_id"], body["client_secret"]) == (dot.client_id, dot.client_secret)

    # The token works at the provider.
    me = requests.get(dot.userinfo_url, headers={"Authorization": f"Bearer {connection.access_token}"}, timeout=10)
    assert me.status_code == 200 and me.json()["username"] == "alice"


def test_without_pkce_dot_refuses_and_nothing_is_stored(people, dot, team, api):
    connection = new_connection(team, make_dot_client(team.a, team.alice, dot, use_pkce=False))
    authorize = start_flow(people.alice, connection)
    assert "code_challenge" not in query_of(authorize)

    # DOT answers straight away with an error redirect, no consent page.
    callback = dot_session(dot).get(authorize, allow_redirects=False, timeout=10)
    assert callback.status_code == 302
    response = finish_flow(people.alice, callback.headers["Location"])

    message = "The provider reported an error: invalid_request. (Code challenge required.)"
    assert message in response.content.decode()
    assert api.as_user(team.alice).get(api_url(connection)).json()["last_error"] == message
    connection.refresh_from_db()
    assert connection.status == Status.PENDING and not connection.has_tokens


def test_consent_cancelled_at_dot(people, dot, dot_client, team, api):
    connection = new_connection(team, dot_client)

    response = finish_flow(people.alice, dot_consent(dot, start_flow(people.alice, connection), allow=False))

    assert "Access was denied at the provider" in response.content.decode()
    connection.refresh_from_db()
    assert connection.status == Status.PENDING and not connection.has_tokens
    assert "Access was denied" in connection.last_error


def test_code_reuse_at_dot(people, dot, dot_client, team):
    connection = new_connection(team, dot_client)
    callback = dot_consent(dot, start_flow(people.alice, connection))
    finish_flow(people.alice, callback)
    connection.refresh_from_db()
    tokens = (connection.access_token, connection.refresh_token)

    state = query_of(start_flow(people.alice, connection))["state"]
    response = people.alice.get("/oauth2/callback", {"code": query_of(callback)["code"], "state": state}, follow=True)

    assert "Exchanging the authorization code failed" in response.content.decode()
    connection.refresh_from_db()
    assert "invalid_grant" in connection.last_error
    assert (connection.access_token, connection.refresh_token) == tokens
