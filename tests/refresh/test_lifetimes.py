"""Expiry times: the provider's ``expires_in`` (string or number) when given, else the client's configured lifetimes.

A generic client points at the Exact Online emulator (no identity endpoint),
and the emulator is told what its token endpoint answers, so each token
response shape goes over real HTTP through Authlib.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.services import Actor
from connections.models import Connection, Status
from connections.services import connection_create
from oauthclients.services import oauth_client_create
from tests.connections.helpers import exact_consent, finish_flow, start_flow
from tests.fixtures.peers import EXACT_CLIENT_ID, EXACT_CLIENT_SECRET

pytestmark = pytest.mark.django_db

CONFIGURED_ACCESS_MS = 123_000


def connect_with_token_response(people, team, exact, body, refresh_ms=0):
    client = oauth_client_create(
        workspace=team.a,
        actor=Actor(user=team.alice),
        provider="generic",
        name="Generic at emulator",
        client_id=EXACT_CLIENT_ID,
        client_secret=EXACT_CLIENT_SECRET,
        authorization_url=exact.authorization_url,
        token_url=exact.token_url,
        token_endpoint_auth_method="client_secret_post",
        access_token_expires_in=CONFIGURED_ACCESS_MS,
        refresh_token_expires_in=refresh_ms,
    )
    connection = connection_create(
        workspace=team.a, oauth_client=client, name="Lifetimes", owner=team.alice, actor=Actor(user=team.alice)
    )
    callback = exact_consent(start_flow(people.alice, connection))
    exact.fail_next(
        1, status=200, body={"access_token": "at-1", "token_type": "bearer", "refresh_token": "rt-1", **body}
    )
    before = timezone.now()
    finish_flow(people.alice, callback)
    after = timezone.now()
    connection = Connection.objects.get(pk=connection.pk)
    assert connection.status == Status.ACTIVE, connection.last_error
    assert connection.access_token == "at-1"
    return connection, before, after


def assert_within(value, before, after, delta):
    assert value is not None
    assert before + delta <= value <= after + delta


@pytest.mark.parametrize(
    ("body", "seconds"),
    [
        ({"expires_in": "600"}, 600),  # Exact Online: a JSON string
        ({"expires_in": 600}, 600),  # everyone else: a number
        ({"expires_in": 7200.0}, 7200),
        ({}, CONFIGURED_ACCESS_MS // 1000),  # none sent: the client's configured lifetime
        ({"expires_in": ""}, CONFIGURED_ACCESS_MS // 1000),
        ({"expires_in": None}, CONFIGURED_ACCESS_MS // 1000),
    ],
)
def test_access_token_expiry(people, team, exact, body, seconds):
    connection, before, after = connect_with_token_response(people, team, exact, body)

    assert connection.access_token_lifetime == seconds
    assert_within(connection.access_token_expires_at, before, after, timedelta(seconds=seconds))


@pytest.mark.parametrize(
    ("refresh_ms", "body", "expected"),
    [
        (0, {}, None),  # configured 0: never expires
        (86_400_000, {}, timedelta(days=1)),  # configured lifetime in milliseconds
        (0, {"refresh_token_expires_in": 7200}, timedelta(hours=2)),  # the provider's own word wins
    ],
)
def test_refresh_token_expiry(people, team, exact, refresh_ms, body, expected):
    connection, before, after = connect_with_token_response(people, team, exact, body, refresh_ms=refresh_ms)

    assert connection.refresh_token == "rt-1"
    if expected is None:
        assert connection.refresh_token_expires_at is None
    else:
        assert_within(connection.refresh_token_expires_at, before, after, expected)
