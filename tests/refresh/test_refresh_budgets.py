"""When the provider stumbles: retries inside Exact Online's window, its error
budget (10 failed token requests an hour) and its daily budget (200 token
requests per user), the token API's one on-demand attempt, and what the
history says afterwards. In-process against the emulator (40 s tokens,
refresh only in the last 30 s); the real-worker chaos test is in tests/refresh/test_worker.py.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from connections.models import Connection, EventKind, Status
from connections.refresh import claim_due
from connections.tasks import refresh_connections
from oauthclients.providers import get_provider
from tests.refresh.helpers import compressed_exact, connect, refresh_url, refreshes, token_url, tokens_client

EXACT = get_provider("exact_online").refresh_policy

pytestmark = compressed_exact


@pytest.fixture
def due(team, exact_client, exact):
    """Bob's connection, due: 20 s left on its access token (inside Exact's 30 s window)."""
    return connect(exact_client, exact, name="Jansen", owner=team.bob, remaining=20)


@pytest.fixture
def tokens(team):
    return tokens_client(team.a)


def sweep_and_run() -> list[str]:
    ids, lease = claim_due()
    return [outcome for i in ids for outcome in refresh_connections([str(i)], str(lease))]


def make_due(connection: Connection, **fields) -> None:
    Connection.objects.filter(pk=connection.pk).update(refresh_due_at=timezone.now(), **fields)


def reload(connection: Connection) -> Connection:
    connection.refresh_from_db()
    return connection


# --- Retries inside the window ------------------------------------------------------------------


def test_exact_online_retries_seconds_apart_and_never_past_10_errors_an_hour():
    assert EXACT.window_seconds == 30 and EXACT.retry_seconds == 3
    assert (EXACT.error_budget, EXACT.error_budget_seconds, EXACT.daily_token_budget) == (10, 3600, 200)


def test_one_failed_answer_inside_the_window_does_not_cost_the_token(due, exact):
    exact.fail_next(1, status=500)

    assert sweep_and_run() == ["failed"]
    failed = reload(due)
    assert failed.refresh_due_at < failed.access_token_expires_at  # the retry comes before expiry
    make_due(due)
    assert sweep_and_run() == ["refreshed"]

    due = reload(due)
    assert due.status == Status.ACTIVE
    assert [lead > 0 for lead in exact.refresh_leads] == [True]  # refreshed before the old token expired
    recovered = due.events.get(kind=EventKind.RECOVERED)
    assert recovered.data["unavailable_seconds"] == 0
    assert "unavailable for 0 s" in recovered.detail
    assert due.events.filter(kind=EventKind.REFRESH_FAILED).count() == 1  # the failure stays in the history


def test_the_recovery_event_says_how_long_the_token_was_unavailable(due, exact):
    exact.fail_next(1, status=502)
    sweep_and_run()
    expired_at = timezone.now() - timedelta(seconds=12)
    make_due(due, access_token_expires_at=expired_at)

    assert sweep_and_run() == ["refreshed"]

    recovered = reload(due).events.get(kind=EventKind.RECOVERED)
    assert 12 <= recovered.data["unavailable_seconds"] <= 15


def test_retries_spread_what_is_left_of_the_error_budget_over_the_time_left():
    now = timezone.now()
    expires = now + timedelta(seconds=300)  # a provider with a long window (or none)
    errors = [now]

    assert EXACT.retry_delay(now=now, expires_at=expires, errors=errors, backoff=30) == 30  # 300 s / 10 tries
    assert EXACT.retry_delay(now=now, expires_at=now + timedelta(seconds=20), errors=errors, backoff=30) == 3
    assert EXACT.retry_delay(now=now, expires_at=now - timedelta(seconds=1), errors=errors, backoff=30) == 30


def test_no_connection_fails_more_than_the_error_budget_in_an_hour(due, exact, tokens):
    exact.fail_next(30, status=500)

    outcomes = []
    for _ in range(12):
        make_due(due)
        outcomes += sweep_and_run()

    assert outcomes == ["failed"] * 10 + ["deferred"] * 2
    assert exact.count("injected") == 10
    due = reload(due)
    first_error = due.events.filter(kind=EventKind.REFRESH_FAILED).order_by("created_at").first().created_at
    assert due.refresh_due_at >= first_error + timedelta(hours=1)
    deferred = due.events.filter(kind=EventKind.REFRESH_DEFERRED).first()
    assert "10 failed token requests" in deferred.detail and "allows 10" in deferred.detail

    # Nor the token API, nor a person's "refresh now".
    Connection.objects.filter(pk=due.pk).update(access_token_expires_at=timezone.now() - timedelta(seconds=1))
    response = tokens.get(token_url(due))
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 3000
    assert exact.count("injected") == 10


def test_an_error_from_an_earlier_incident_still_counts_within_the_hour(due, exact):
    exact.fail_next(9, status=500)
    for _ in range(9):
        make_due(due)
        sweep_and_run()
    make_due(due)
    assert sweep_and_run() == ["refreshed"]  # recovered, 9 errors in the last hour

    exact.fail_next(5, status=500)
    outcomes = []
    for _ in range(3):
        make_due(due)
        outcomes += sweep_and_run()

    assert outcomes == ["failed", "deferred", "deferred"]
    assert exact.count("injected") == 10


# --- The token API tries once before answering "unavailable" ------------------------------------


def test_the_token_api_refreshes_a_failing_connection_whose_token_expired(due, exact, tokens):
    exact.fail_next(1, status=500)
    sweep_and_run()
    Connection.objects.filter(pk=due.pk).update(
        access_token_expires_at=timezone.now() - timedelta(seconds=2),
        last_error_at=timezone.now() - timedelta(seconds=10),
        refresh_due_at=timezone.now() + timedelta(seconds=20),
    )

    response = tokens.get(token_url(due))

    assert response.status_code == 200
    assert exact.is_access_token_valid(response.json()["access_token"])
    assert reload(due).status == Status.ACTIVE
    assert refreshes(exact, "ok") == 1


def test_callers_behind_a_failed_on_demand_attempt_wait_for_the_next_retry(due, exact, tokens):
    Connection.objects.filter(pk=due.pk).update(
        status=Status.REFRESH_FAILING,
        refresh_failures=1,
        access_token_expires_at=timezone.now() - timedelta(seconds=1),
        refresh_due_at=timezone.now() + timedelta(seconds=20),
    )
    exact.fail_next(5, status=500)

    answers = [tokens.get(token_url(due)) for _ in range(4)]

    assert [a.status_code for a in answers] == [503] * 4
    assert all(a.json()["error"]["code"] == "refresh_failing" for a in answers)
    assert refreshes(exact) == 1  # one attempt, then the retry spacing holds


def test_a_failing_connection_with_time_left_is_served_without_an_attempt(due, exact, tokens):
    exact.fail_next(1, status=500)
    sweep_and_run()

    response = tokens.get(token_url(due))

    assert response.status_code == 200
    assert response.json()["access_token"] == due.access_token
    assert refreshes(exact) == 1


# --- Token requests per day ---------------------------------------------------------------------


def test_token_requests_are_counted_per_connection_and_day_and_shown(due, exact, team, api):
    exact.fail_next(1, status=500)
    sweep_and_run()
    make_due(due)
    sweep_and_run()

    assert reload(due).token_calls_today == 2  # a failure and a success
    body = api.as_user(team.alice).get(f"/api/v1/workspaces/acme/connections/{due.id}").json()
    assert (body["token_calls_today"], body["daily_token_budget"]) == (2, 200)
    page = api.as_user(team.alice).get(f"/w/acme/connections/{due.id}/")
    assert "2 of 200" in page.content.decode()


def test_yesterdays_token_requests_do_not_count_today(due):
    Connection.objects.filter(pk=due.pk).update(
        token_calls=199, token_calls_date=timezone.now().date() - timedelta(days=1)
    )
    assert reload(due).token_calls_today == 0


def test_a_connection_at_its_daily_budget_asks_the_provider_nothing_until_midnight(due, exact):
    Connection.objects.filter(pk=due.pk).update(token_calls=200, token_calls_date=timezone.now().date())

    assert sweep_and_run() == ["deferred"]

    due = reload(due)
    midnight = (timezone.now() + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert due.refresh_due_at == midnight
    assert exact.count() == 0
    assert "200 token requests today" in due.events.get(kind=EventKind.REFRESH_DEFERRED).detail


@pytest.fixture
def tight(due):
    """Exact's real 600 s tokens, with only the day's scheduled refreshes left in the budget."""
    now = timezone.now()
    calls = 200 - EXACT.scheduled_refreshes_left_today(now, 600)
    Connection.objects.filter(pk=due.pk).update(
        access_token_lifetime=600, token_calls=calls, token_calls_date=now.date()
    )
    return reload(due)


def test_a_manual_refresh_never_takes_a_scheduled_refreshs_share_of_the_daily_budget(tight, exact, team, api):
    response = api.as_user(team.alice).post(refresh_url(tight))

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "provider_budget"
    assert "daily token requests" in response.json()["error"]["message"]
    assert exact.count() == 0


def test_retries_slow_to_the_scheduled_pace_when_the_daily_budget_is_tight(tight, exact):
    exact.fail_next(1, status=500)

    assert sweep_and_run() == ["failed"]

    due = reload(tight)
    assert (due.refresh_due_at - due.last_error_at).total_seconds() >= 575  # one per scheduled refresh
