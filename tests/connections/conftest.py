"""Connections against the live peers.

- ``exact``: the Exact Online emulator, with Tokenkeeper's app registered
  (redirect URI ``{PUBLIC_BASE_URL}/oauth2/callback`` enforced).
- ``dot_server``: one django-oauth-toolkit server per test session;
  ``dot`` registers a fresh app on it for each test.
- ``exact_client`` / ``dot_client``: OAuth clients of workspace Acme pointed
  at them; ``exact_connection``: Alice's pending connection.
- ``people``: Django test clients logged in as the team's people.
"""

import secrets
from types import SimpleNamespace

import pytest
from django.test import Client

from audit.services import Actor
from connections.services import connection_create
from oauthclients.services import oauth_client_create
from tests.peers.dot import DjangoOAuthToolkitServer
from tests.peers.exact_online import ExactOnlineEmulator

from .helpers import DOT_SECRET_MARKER, EXACT_CLIENT_ID, EXACT_CLIENT_SECRET

DOT_ACCESS_LIFETIME = 1800  # what DOT says in expires_in (an integer); differs from the client's configured 3600 s


@pytest.fixture
def redirect_uri(settings):
    return f"{settings.PUBLIC_BASE_URL}/oauth2/callback"


@pytest.fixture
def exact(redirect_uri):
    with ExactOnlineEmulator() as emulator:
        emulator.add_client(EXACT_CLIENT_ID, EXACT_CLIENT_SECRET, name="Tokenkeeper", redirect_uris=[redirect_uri])
        emulator.add_user(
            "jan@example.nl", full_name="Jan de Vries", divisions=[123456, 654321], customer_name="Jansen Bakkerij B.V."
        )
        yield emulator


@pytest.fixture(scope="session")
def dot_server():
    with DjangoOAuthToolkitServer(access_token_lifetime=DOT_ACCESS_LIFETIME) as server:
        yield server


@pytest.fixture
def dot(dot_server, redirect_uri):
    dot_server.setup_app(redirect_uri, client_secret=f"{DOT_SECRET_MARKER}-{secrets.token_hex(4)}")
    return dot_server


def make_exact_client(workspace, user, exact, **overrides):
    fields = {
        "provider": "exact_online",
        "site": "nl",
        "name": "Exact Online NL",
        "client_id": EXACT_CLIENT_ID,
        "client_secret": EXACT_CLIENT_SECRET,
        "authorization_url": exact.authorization_url,
        "token_url": exact.token_url,
        "access_token_expires_in": 599_999,
        "refresh_token_expires_in": 30 * 24 * 3600 * 1000,
        **overrides,
    }
    return oauth_client_create(workspace=workspace, actor=Actor(user=user), **fields)


def make_dot_client(workspace, user, dot, auth_method="client_secret_basic", **overrides):
    fields = {
        "provider": "generic",
        "name": "DOT",
        "client_id": dot.client_id,
        "client_secret": dot.client_secret,
        "authorization_url": dot.authorization_url,
        "token_url": dot.token_url,
        "scopes": "read write",
        "token_endpoint_auth_method": auth_method,
        "use_pkce": True,
        "identity_url": dot.userinfo_url,
        "access_token_expires_in": 3_600_000,
        "refresh_token_expires_in": 0,
        **overrides,
    }
    return oauth_client_create(workspace=workspace, actor=Actor(user=user), **fields)


@pytest.fixture
def exact_client(team, exact):
    return make_exact_client(team.a, team.alice, exact)


@pytest.fixture
def dot_client(team, dot):
    return make_dot_client(team.a, team.alice, dot)


@pytest.fixture
def exact_connection(team, exact_client):
    return connection_create(
        workspace=team.a,
        oauth_client=exact_client,
        name="Jansen administratie",
        owner=team.alice,
        actor=Actor(user=team.alice),
    )


@pytest.fixture
def people(team):
    """``people.alice`` etc.: a logged-in Django test client per person (one browser session each)."""
    people = {}
    for name in ("alice", "bob", "charlie"):
        client = Client()
        client.force_login(getattr(team, name))
        people[name] = client
    return SimpleNamespace(**people, anonymous=Client())


@pytest.fixture
def exact40():
    """The emulator with compressed lifetimes: 40 s tokens, refresh only in the last 30 s."""
    from tests.engine.helpers import exact_emulator

    with exact_emulator() as emulator:
        yield emulator


@pytest.fixture
def client40(team, exact40):
    from tests.engine.helpers import exact_client as engine_exact_client

    return engine_exact_client(team.a, team.alice, exact40)
