"""``GET …/token?min_valid=N``: a token valid at least N more seconds, against the Exact
Online emulator with 130 s tokens that may be refreshed only in their last 30 s."""

import time
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from connections.models import EventKind
from tests.refresh.helpers import connect, refreshes, token_url, tokens_client

LIFETIME = 130
WINDOW = 30
pytestmark = pytest.mark.exact_online(access_token_lifetime=LIFETIME, refresh_window=WINDOW)


@pytest.fixture
def tokens(team):
    return tokens_client(team.a)


def expires_in(body) -> float:
    expires_at = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    return (expires_at - timezone.now()).total_seconds()


def ask(client, connection, min_valid):
    return client.get(token_url(connection), {"min_valid": min_valid})


def test_a_token_with_10_s_left_and_min_valid_60_is_refreshed_in_the_window(team, exact_client, exact, tokens):
    connection = connect(exact_client, exact, name="Short", owner=team.alice, remaining=10)

    response = ask(tokens, connection, 60)

    assert response.status_code == 200
    body = response.json()
    assert body["access_token"] != connection.access_token
    assert exact.is_access_token_valid(body["access_token"])
    assert expires_in(body) > 120
    assert refreshes(exact, "ok") == 1 and refreshes(exact) == 1
    assert 0 < exact.refresh_leads[0] <= WINDOW


def test_a_token_valid_long_enough_is_served_as_is(team, exact_client, exact, tokens):
    connection = connect(exact_client, exact, name="Fresh", owner=team.alice, remaining=120)

    response = ask(tokens, connection, 60)

    assert response.status_code == 200
    assert response.json()["access_token"] == connection.access_token
    assert refreshes(exact) == 0


def test_before_the_window_opens_the_call_waits_for_it_then_returns_the_new_token(
    team, exact_client, exact, tokens, settings
):
    settings.TOKEN_MIN_VALID_MAX_WAIT = 10
    connection = connect(exact_client, exact, name="Soon", owner=team.alice, remaining=WINDOW + 2)

    response = ask(tokens, connection, 60)

    assert response.status_code == 200
    body = response.json()
    assert body["access_token"] != connection.access_token
    assert expires_in(body) > 120
    # The emulator saw one refresh, inside its window: never the "too early" refusal.
    assert refreshes(exact, "ok") == 1 and refreshes(exact, "too_early") == 0
    assert connection.events.filter(kind=EventKind.REFRESHED, detail__contains="min_valid").count() == 1


def test_a_window_further_away_than_the_bound_is_a_409_at_once_with_retry_after(
    team, exact_client, exact, tokens, settings
):
    settings.TOKEN_MIN_VALID_MAX_WAIT = 2
    connection = connect(exact_client, exact, name="Later", owner=team.alice, remaining=WINDOW + 20)
    started = time.monotonic()

    response = ask(tokens, connection, 60)

    assert time.monotonic() - started < settings.TOKEN_MIN_VALID_MAX_WAIT  # answered without waiting
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "not_valid_long_enough"
    assert 15 <= error["retry_after"] <= 21
    assert response["Retry-After"] == str(error["retry_after"])
    assert refreshes(exact) == 0


def test_nothing_waits_longer_than_the_bound(team, exact_client, exact, tokens, settings):
    """The window opens within the bound but the refresh then fails: one attempt, then 409."""
    settings.TOKEN_MIN_VALID_MAX_WAIT = 3
    connection = connect(exact_client, exact, name="Flaky", owner=team.alice, remaining=WINDOW + 1)
    exact.fail_next(5, status=500)
    started = time.monotonic()

    response = ask(tokens, connection, 60)

    assert time.monotonic() - started < settings.TOKEN_MIN_VALID_MAX_WAIT + 2
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_valid_long_enough"
    assert refreshes(exact) == 1


def test_min_valid_over_half_the_lifetime_is_refused(team, exact_client, exact, tokens):
    connection = connect(exact_client, exact, name="Fresh", owner=team.alice, remaining=120)

    response = ask(tokens, connection, LIFETIME // 2 + 1)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and "min_valid" in error["fields"]
    assert refreshes(exact) == 0


@pytest.mark.parametrize("value", ["0", "-5", "soon"])
def test_min_valid_must_be_a_positive_number_of_seconds(team, exact_client, exact, tokens, value):
    connection = connect(exact_client, exact, name="Fresh", owner=team.alice, remaining=120)

    response = ask(tokens, connection, value)

    assert response.status_code == 400
    assert "min_valid" in response.json()["error"]["fields"]


def test_concurrent_callers_get_one_refresh(team, exact_client, exact, tokens):
    """Single flight: the second caller finds the token the first got."""
    connection = connect(exact_client, exact, name="Short", owner=team.alice, remaining=10)

    first = ask(tokens, connection, 60).json()["access_token"]
    second = ask(tokens, connection, 60).json()["access_token"]

    assert first == second
    assert refreshes(exact) == 1


def test_without_min_valid_the_answer_is_unchanged(team, exact_client, exact, tokens):
    connection = connect(exact_client, exact, name="Soon", owner=team.alice, remaining=WINDOW + 10)

    response = tokens.get(token_url(connection))

    assert response.status_code == 200
    assert response.json()["access_token"] == connection.access_token
    assert timedelta(seconds=response.json()["expires_in"]) <= timedelta(seconds=WINDOW + 10)
    assert refreshes(exact) == 0
