"""The refresh engine in-process, against the Exact Online emulator (40 s
tokens, refresh only in the last 30 s): when a refresh is due, what each
provider answer does to the connection, and who gets told.

Runs on SQLite and PostgreSQL; the row-lock and real-worker tests are
``test_locks.py`` and ``test_worker.py``.
"""

import socket
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.core import mail
from django.test import Client
from django.utils import timezone

from connections import oauth
from connections.models import Connection, EventKind, Status
from connections.oauth import TokenSet
from connections.refresh import claim_due, refresh_forced, refresh_on_demand
from connections.tasks import refresh_connections
from connections.tokens import apply_tokens
from oauthclients.providers import RefreshPolicy, get_provider
from tests.fixtures.connections import make_exact_client
from tests.fixtures.peers import EXACT_CLIENT_ID as CLIENT_ID
from tests.fixtures.peers import EXACT_CLIENT_SECRET as CLIENT_SECRET
from tests.refresh.helpers import (
    compressed_exact,
    connect,
    refreshes,
    token_url,
    tokens_client,
)

pytestmark = compressed_exact

NOW = timezone.now()


@pytest.fixture
def due(team, exact_client, exact):
    """Bob's connection, due: 20 s left on its access token (inside Exact's 30 s window)."""
    return connect(exact_client, exact, name="Jansen", owner=team.bob, remaining=20)


def sweep_and_run() -> list[str]:
    """One sweep, then each queued task run here, as a worker would."""
    ids, lease = claim_due()
    return [run_claimed(connection_id, lease) for connection_id in ids]


def run_claimed(connection_id, lease) -> str:
    """The production task for one claimed id; how it ended."""
    (outcome,) = refresh_connections([str(connection_id)], str(lease))
    return outcome


def reload(connection: Connection) -> Connection:
    connection.refresh_from_db()
    return connection


# --- When a refresh is due ---------------------------------------------------------------


def test_exact_online_refreshes_25_seconds_before_expiry_inside_its_30_second_window():
    policy = get_provider("exact_online").refresh_policy
    assert policy.due_at(NOW, 600) == NOW - timedelta(seconds=25)
    assert policy.window_opens_at(NOW) == NOW - timedelta(seconds=30)
    assert policy.window_opens_at(NOW) < policy.due_at(NOW, 40) < NOW


@pytest.mark.parametrize(
    ("lifetime", "margin"),
    [
        (3600, 360),  # 10 % of the lifetime
        (300, 60),  # at least 60 s
        (100, 50),  # at most half the lifetime
        (7200, 720),
    ],
)
def test_other_providers_refresh_a_tenth_of_the_lifetime_early_at_least_60_s_at_most_half(lifetime, margin):
    assert get_provider("generic").refresh_policy.due_at(NOW, lifetime) == NOW - timedelta(seconds=margin)
    assert RefreshPolicy().window_opens_at(NOW) is None


def test_due_time_follows_the_providers_expires_in_given_as_a_string(team, exact_client, exact):
    connection = connect(exact_client, exact, name="Fresh", owner=team.alice, remaining=40)
    issued = connection.access_token_expires_at - timedelta(seconds=40)
    assert connection.access_token_lifetime == 40
    assert connection.refresh_due_at == issued + timedelta(seconds=15)


def test_due_time_falls_back_to_the_clients_configured_lifetime(team, exact_client, exact):
    connection = connect(exact_client, exact, name="No expires_in", owner=team.alice, remaining=40)
    apply_tokens(connection, TokenSet("at", "rt", "bearer", None, None, ""), issued_at=NOW)
    assert connection.access_token_lifetime == 599  # 599 999 ms configured
    assert connection.access_token_expires_at == NOW + timedelta(seconds=599)
    assert connection.refresh_due_at == NOW + timedelta(seconds=599 - 25)
    assert connection.refresh_token_expires_at == NOW + timedelta(days=30)


def test_a_generic_connection_refreshes_before_its_refresh_token_runs_out(team, exact):
    client = make_exact_client(
        team.a,
        team.alice,
        exact,
        provider="generic",
        name="Generic",
        access_token_expires_in=3_600_000,
        refresh_token_expires_in=1_800_000,
    )
    connection = connect(client, exact, name="Generic one", owner=team.alice, remaining=40)
    apply_tokens(connection, TokenSet("at", "rt", "bearer", 3600, None, ""), issued_at=NOW)
    # Margin 360 s before the access token expires, but the refresh token dies after 30 min.
    assert connection.refresh_due_at == NOW + timedelta(minutes=30) - timedelta(minutes=10)


# --- A refresh that works --------------------------------------------------------------------


def test_a_due_refresh_rotates_the_tokens_inside_the_providers_window(due, exact):
    old_access, old_refresh = due.access_token, due.refresh_token

    assert sweep_and_run() == ["refreshed"]

    due = reload(due)
    assert due.status == Status.ACTIVE
    assert due.access_token != old_access and due.refresh_token != old_refresh
    assert exact.is_access_token_valid(due.access_token)
    assert [0 < lead <= 30 for lead in exact.refresh_leads] == [True]
    assert due.refresh_due_at == due.access_token_expires_at - timedelta(seconds=25)
    assert due.lease_token is None and due.lease_expires_at is None
    assert due.events.filter(kind=EventKind.REFRESHED).count() == 1
    assert sweep_and_run() == []  # nothing due any more
    assert refreshes(exact) == 1


# --- Transient failures: retry with backoff, keep serving the valid token -------------------------


def test_a_provider_500_marks_the_connection_failing_and_retries_inside_the_window_then_backs_off(due, exact, settings):
    settings.REFRESH_RETRY_BASE_SECONDS = 10
    exact.fail_next(3, status=500)

    assert sweep_and_run() == ["failed"]
    due = reload(due)
    assert due.status == Status.REFRESH_FAILING
    assert due.refresh_failures == 1
    assert "HTTP 500" in due.last_error
    first_delay = (due.refresh_due_at - due.last_error_at).total_seconds()
    assert 3 <= first_delay <= 3.6  # inside Exact's window: seconds apart, jitter upwards
    assert due.access_token_expires_at > due.refresh_due_at  # retried before the token expires
    assert due.access_token_expires_at > timezone.now()  # the token still works meanwhile

    Connection.objects.filter(pk=due.pk).update(
        refresh_due_at=timezone.now(), access_token_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert sweep_and_run() == ["failed"]
    due = reload(due)
    assert due.refresh_failures == 2
    assert 20 <= (due.refresh_due_at - due.last_error_at).total_seconds() <= 24  # expired: 10 s doubled

    Connection.objects.filter(pk=due.pk).update(refresh_due_at=timezone.now())
    assert sweep_and_run() == ["failed"]
    due = reload(due)
    assert due.refresh_failures == 3
    assert 40 <= (due.refresh_due_at - due.last_error_at).total_seconds() <= 48  # and doubled again

    Connection.objects.filter(pk=due.pk).update(refresh_due_at=timezone.now())
    assert sweep_and_run() == ["refreshed"]
    due = reload(due)
    assert due.status == Status.ACTIVE
    assert (due.refresh_failures, due.last_error) == (0, "")
    assert due.events.filter(kind=EventKind.RECOVERED).count() == 1
    assert due.events.filter(kind=EventKind.REFRESH_FAILED).count() == 3  # the failure history stays
    assert exact.outcomes == {"injected": 3, "ok": 1}


def test_while_retrying_the_token_api_serves_the_still_valid_token(due, exact, settings, team):
    settings.REFRESH_RETRY_BASE_SECONDS = 30
    exact.fail_next(1, status=503)
    sweep_and_run()

    response = tokens_client(team.a).get(token_url(due))

    assert response.status_code == 200
    assert response.json()["access_token"] == due.access_token
    assert exact.is_access_token_valid(response.json()["access_token"])
    assert refreshes(exact) == 1  # backing off: no second call


def test_a_token_request_that_times_out_is_retried_and_then_works(due, exact, monkeypatch):
    """The provider never processed it (it hung, then dropped it), so the same refresh token still works."""
    monkeypatch.setattr(oauth, "TIMEOUT", (2, 0.5))
    exact.hang_next(1, 1.5, then="drop")

    assert sweep_and_run() == ["failed"]
    due = reload(due)
    assert due.status == Status.REFRESH_FAILING
    assert "Could not reach the token endpoint: ReadTimeout" in due.last_error

    Connection.objects.filter(pk=due.pk).update(refresh_due_at=timezone.now())
    assert sweep_and_run() == ["refreshed"]
    assert reload(due).status == Status.ACTIVE
    assert exact.count("ok") == 1


def test_a_dropped_connection_is_transient(due, exact):
    exact.hang_next(1, 0, then="drop")
    assert sweep_and_run() == ["failed"]
    assert reload(due).status == Status.REFRESH_FAILING


@pytest.fixture
def proxy_environment(monkeypatch):
    """Set proxy variables for one test; the per-endpoint lookup is cached, so clear it around."""
    for name in (
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "no_proxy",
        "NO_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)
    oauth.environment_settings.cache_clear()
    yield monkeypatch
    oauth.environment_settings.cache_clear()


def test_token_requests_use_the_proxy_the_environment_names_unless_no_proxy_exempts_it(due, exact, proxy_environment):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    proxy_environment.setenv("http_proxy", f"http://127.0.0.1:{closed_port}")

    assert sweep_and_run() == ["failed"]  # sent to the (closed) proxy, not to the provider
    assert "ProxyError" in reload(due).last_error
    assert refreshes(exact) == 0

    proxy_environment.setenv("no_proxy", "127.0.0.1")
    oauth.environment_settings.cache_clear()  # a restarted worker reads the environment again
    assert refresh_forced(connection=due).outcome == "refreshed"
    assert refreshes(exact, "ok") == 1


def test_a_429_waits_at_least_as_long_as_retry_after_says(due, exact, settings):
    settings.REFRESH_RETRY_BASE_SECONDS = 1
    exact.fail_next(1, status=429, retry_after=45)

    assert sweep_and_run() == ["failed"]

    due = reload(due)
    assert due.status == Status.REFRESH_FAILING
    assert "HTTP 429" in due.last_error
    assert (due.refresh_due_at - due.last_error_at).total_seconds() >= 45
    event = due.events.get(kind=EventKind.REFRESH_FAILED)
    assert event.data["status"] == 429 and event.data["retry_in_seconds"] >= 45


def test_too_early_is_retried_a_few_seconds_later_without_giving_up(team, exact_client, exact):
    """Our clock ran ahead: the provider says its window is not open yet."""
    connection = connect(exact_client, exact, name="Early", owner=team.bob, remaining=38)
    Connection.objects.filter(pk=connection.pk).update(refresh_due_at=timezone.now())

    assert sweep_and_run() == ["failed"]
    connection = reload(connection)
    assert exact.count("too_early") == 1
    assert connection.status == Status.REFRESH_FAILING
    assert "early refresh" in connection.last_error
    assert 4 <= (connection.refresh_due_at - connection.last_error_at).total_seconds() <= 6

    exact.advance(10)  # the window opens
    Connection.objects.filter(pk=connection.pk).update(refresh_due_at=timezone.now())
    assert sweep_and_run() == ["refreshed"]
    assert reload(connection).status == Status.ACTIVE
    assert mail.outbox == []


# --- Permanent failures: needs_reauth at once, one e-mail per person who can fix it ----------------


def test_invalid_grant_needs_reauth_after_one_attempt_and_mails_owner_and_admins_once(
    due, exact, team, dora, django_capture_on_commit_callbacks
):
    exact.revoke_all()

    with django_capture_on_commit_callbacks(execute=True):
        assert sweep_and_run() == ["needs_reauth"]
        assert sweep_and_run() == []  # not due any more: no retry loop
        assert refresh_on_demand(connection=due).outcome == "skipped"

    due = reload(due)
    assert due.status == Status.NEEDS_REAUTH
    assert "invalid_grant" in due.last_error and "Reconnect" in due.last_error
    assert "interrupted" not in due.last_error
    assert due.refresh_due_at is None
    assert refreshes(exact) == 1
    assert sorted(m.to[0] for m in mail.outbox) == ["alice@example.com", "bob@example.com", "dora@example.com"]
    assert all("needs re-authorization" in m.subject for m in mail.outbox)
    assert all(due.refresh_token not in m.body for m in mail.outbox)
    assert due.events.filter(kind=EventKind.NEEDS_REAUTH).count() == 1


def test_an_old_refresh_token_needs_reauth(due, exact, django_capture_on_commit_callbacks):
    old = due.refresh_token
    sweep_and_run()
    Connection.objects.filter(pk=due.pk).update(refresh_token=old, refresh_due_at=timezone.now())

    with django_capture_on_commit_callbacks(execute=True):
        assert sweep_and_run() == ["needs_reauth"]

    due = reload(due)
    assert exact.count("old_refresh_token") == 1
    assert "Old refresh token used." in due.last_error
    assert len(mail.outbox) == 2  # Bob (owner) and Alice (admin)


def test_an_interrupted_refresh_says_so_when_the_provider_refuses_the_old_token(
    due, exact, django_capture_on_commit_callbacks
):
    """A worker died after the provider rotated: its lease runs out, the next sweep notes the
    interruption, and the one further attempt ends in needs_reauth that explains why."""
    ids, lease = claim_due()
    lost = requests.post(
        exact.token_url,
        timeout=5,
        data={
            "grant_type": "refresh_token",
            "refresh_token": due.refresh_token,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    )
    assert lost.status_code == 200  # rotated; the answer never reached us
    Connection.objects.filter(pk=due.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))

    with django_capture_on_commit_callbacks(execute=True):
        assert sweep_and_run() == ["needs_reauth"]
        assert run_claimed(due.pk, lease) == "skipped"  # the dead worker's task, redelivered

    due = reload(due)
    assert due.status == Status.NEEDS_REAUTH
    assert "interrupted" in due.last_error
    assert exact.count("old_refresh_token") == 1
    assert refreshes(exact) == 2


def test_the_token_api_finding_a_dead_workers_claim_says_the_refresh_was_interrupted(
    due, exact, django_capture_on_commit_callbacks
):
    """The worker died mid-refresh and its claim has not run out yet: an on-demand refresh
    from the token API gets "old refresh token" and explains the interruption."""
    claim_due()
    lost = requests.post(
        exact.token_url,
        timeout=5,
        data={
            "grant_type": "refresh_token",
            "refresh_token": due.refresh_token,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    )
    assert lost.status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        outcome = refresh_on_demand(connection=due).outcome

    assert outcome == "needs_reauth"
    assert "interrupted" in reload(due).last_error
    assert exact.count("old_refresh_token") == 1


def test_a_refresh_without_a_new_refresh_token_keeps_its_expiry(team, exact_client, exact):
    connection = connect(exact_client, exact, name="Fixed", owner=team.bob, remaining=20)
    expires = timezone.now() + timedelta(days=3)
    Connection.objects.filter(pk=connection.pk).update(refresh_token_expires_at=expires)
    connection = reload(connection)
    kept = connection.refresh_token

    apply_tokens(
        connection,
        TokenSet(
            access_token="new-access",
            refresh_token=kept,
            token_type="bearer",
            expires_in=600,
            refresh_expires_in=None,
            scope="",
        ),
        issued_at=timezone.now(),
    )

    assert connection.refresh_token == kept
    assert connection.refresh_token_expires_at == expires


def test_an_expired_refresh_token_needs_reauth_without_asking_the_provider(team, exact):
    client = make_exact_client(team.a, team.alice, exact, name="Short-lived", refresh_token_expires_in=10_000)
    # Issued 20 s ago; the configured refresh-token lifetime is 10 s.
    connection = connect(client, exact, name="Stale", owner=team.bob, remaining=20)
    assert connection.refresh_token_expires_at < timezone.now()

    assert sweep_and_run() == ["needs_reauth"]

    connection = reload(connection)
    assert connection.status == Status.NEEDS_REAUTH
    assert connection.last_error.startswith("The refresh token expired at ")
    assert exact.count() == 0


def test_reconnecting_after_needs_reauth_makes_it_active_again_and_mails_recovered(
    due, exact, team, django_capture_on_commit_callbacks
):
    exact.revoke_all()
    with django_capture_on_commit_callbacks(execute=True):
        sweep_and_run()
    assert reload(due).status == Status.NEEDS_REAUTH
    mail.outbox.clear()

    browser = Client()
    browser.force_login(team.bob)
    start = browser.post(f"/w/acme/connections/{due.id}/connect/")
    assert start.status_code == 302
    params = {k: v[0] for k, v in parse_qs(urlsplit(start["Location"]).query).items()}
    consent = requests.post(
        exact.authorization_url, data={**params, "decision": "allow"}, allow_redirects=False, timeout=5
    )
    callback = urlsplit(consent.headers["Location"])
    with django_capture_on_commit_callbacks(execute=True):
        browser.get(f"{callback.path}?{callback.query}")

    due = reload(due)
    assert due.status == Status.ACTIVE
    assert due.last_error == "" and due.refresh_due_at is not None
    assert exact.is_access_token_valid(due.access_token)
    assert due.events.filter(kind=EventKind.RECOVERED).count() == 1
    assert sorted(m.to[0] for m in mail.outbox) == ["alice@example.com", "bob@example.com"]
    assert all("works again" in m.subject for m in mail.outbox)
