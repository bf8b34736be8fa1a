"""The refresh engine with a real Celery worker and beat (Redis broker, PostgreSQL
locks) against the Exact Online emulator: 40 s tokens, refresh only in the
last 30 s, so a refresh cycle takes about 15 s."""

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
from django.db import connection as db
from django.db import connections, transaction
from django.utils import timezone

from connections.models import Connection, ConnectionEvent, EventKind, Status
from tests.refresh.helpers import (
    compressed_exact,
    connect,
    mail_recipients,
    read_mail_files,
    refreshes,
    token_url,
    tokens_client,
    wait_until,
)

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True), compressed_exact]

CONNECTIONS = 50
CYCLES = 5


def start(celery, worker: str = "worker1"):
    """Worker and beat, started side by side (each takes seconds to boot)."""
    processes = celery.worker(worker, wait=False), celery.beat(wait=False)
    for process in processes:
        process.wait_ready()
    return processes


def expires_at(body) -> datetime:
    return datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))


def status_of(connection) -> str:
    return Connection.objects.values_list("status", flat=True).get(pk=connection.pk)


def lease_of(connection) -> tuple:
    return Connection.objects.values_list("lease_token", "lease_expires_at").get(pk=connection.pk)


def requests_for(exact, connection) -> list:
    grant = exact.grant_for(Connection.objects.get(pk=connection.pk).refresh_token)
    return [r for r in exact.token_requests if r.grant_type == "refresh_token" and r.grant_id == grant.id]


def test_fifty_connections_stay_fresh_for_five_refresh_cycles(team, exact, exact_client, celery):
    start(celery)
    rng = random.Random(20240601)
    # First refreshes spread over the first ~4 s, then one every ~15 s per connection.
    fleet = [
        connect(exact_client, exact, name=f"Company {i:02}", owner=team.alice, remaining=rng.uniform(25.5, 29))
        for i in range(CONNECTIONS)
    ]
    api = tokens_client(team.a)
    served = 0
    deadline = time.monotonic() + 150

    while min(grant.refresh_count for grant in exact.grants) < CYCLES:
        assert time.monotonic() < deadline, f"only {sorted(g.refresh_count for g in exact.grants)} refreshes"
        connection = rng.choice(fleet)
        response = api.get(token_url(connection))
        served_at = timezone.now()
        assert response.status_code == 200, response.content
        body = response.json()
        assert expires_at(body) > served_at and body["expires_in"] > 0
        assert exact.is_access_token_valid(body["access_token"]), f"{connection.name}: the provider rejects it"
        served += 1
        time.sleep(0.02)

    leads = exact.refresh_leads
    outcomes = exact.outcomes
    worker_refreshes = ConnectionEvent.objects.filter(kind=EventKind.REFRESHED, detail="Refreshed.").count()
    print(
        f"\nserved {served} tokens; {len(leads)} refreshes ({worker_refreshes} by the worker, the rest on "
        f"demand); leads {min(leads):.2f}..{max(leads):.2f} s; outcomes {outcomes}; "
        f"max concurrent per chain {exact.max_concurrent_refreshes_per_chain}"
    )
    assert all(0 < lead <= 30 for lead in leads), leads
    assert outcomes["ok"] == len(leads) >= CONNECTIONS * CYCLES
    assert outcomes.get("too_early", 0) == 0
    assert outcomes.get("old_refresh_token", 0) == 0
    assert set(outcomes) == {"ok"}, outcomes
    assert exact.max_concurrent_refreshes_per_chain == 1
    assert worker_refreshes >= CONNECTIONS  # the sweeper does the work; the API fills gaps when it is first
    statuses = set(Connection.objects.values_list("status", "refresh_failures"))
    assert statuses == {(Status.ACTIVE, 0)}


def test_twenty_callers_racing_the_real_sweeper_make_one_token_request(team, exact, exact_client, celery):
    exact.latency = 1.0  # a slow provider: the worker's refresh is still in flight when the callers arrive
    start(celery)
    connection = connect(exact_client, exact, name="Hot", owner=team.alice, remaining=26.5)
    clients = [tokens_client(team.a) for _ in range(20)]
    wait_until(lambda: lease_of(connection)[0] or refreshes(exact), timeout=15, message="the sweeper's claim")
    go = threading.Barrier(20)
    arrived = []

    def call(client):
        try:
            go.wait()
            arrived.append(time.monotonic())
            response = client.get(token_url(connection))
            return response.status_code, response.json()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(call, clients))

    connection.refresh_from_db()
    print(f"\nrefreshed by: {connection.events.get(kind=EventKind.REFRESHED).detail!r}")
    [request] = exact.token_requests
    assert min(arrived) < request.finished  # the callers came while the provider was still answering
    assert exact.max_concurrent_refreshes_per_chain == 1
    assert [status for status, _ in answers] == [200] * 20
    assert {body["access_token"] for _, body in answers} == {connection.access_token}
    assert exact.is_access_token_valid(connection.access_token)
    assert connection.events.filter(kind=EventKind.REFRESHED).count() == 1


def test_provider_errors_retry_with_backoff_and_invalid_grant_needs_reauth_with_one_mail_each(
    team, dora, exact, exact_client, celery
):
    start(celery)

    # Two 500s: refresh_failing (the token still serves), backoff 1 s then 2 s, then active again.
    exact.fail_next(2, status=500)
    flaky = connect(exact_client, exact, name="Flaky", owner=team.alice, remaining=26.5)
    wait_until(lambda: status_of(flaky) == Status.REFRESH_FAILING, timeout=15, message="refresh_failing")
    response = tokens_client(team.a).get(token_url(flaky))
    assert response.status_code == 200 and exact.is_access_token_valid(response.json()["access_token"])
    wait_until(lambda: refreshes(exact, "ok") == 1, timeout=20, message="the recovery")
    wait_until(lambda: status_of(flaky) == Status.ACTIVE, timeout=5, message="active")

    attempts = [r.time for r in exact.token_requests]
    assert [r.outcome for r in exact.token_requests] == ["injected", "injected", "ok"]
    assert attempts[1] - attempts[0] >= 0.8 and attempts[2] - attempts[1] >= 1.6  # 1 s, then 2 s (± 20 %)
    flaky.refresh_from_db()
    assert flaky.events.filter(kind=EventKind.REFRESH_FAILED).count() == 2
    assert flaky.events.filter(kind=EventKind.RECOVERED).count() == 1
    assert 0 < exact.refresh_leads[0] <= 30

    # invalid_grant: needs_reauth after exactly one attempt, one e-mail to each of owner and admins.
    broken = connect(exact_client, exact, name="Broken", owner=team.bob, remaining=26.5)
    exact.revoke(broken.refresh_token)
    wait_until(lambda: status_of(broken) == Status.NEEDS_REAUTH, timeout=15, message="needs_reauth")
    time.sleep(3)  # three more sweeps: nothing is retried

    assert [r.outcome for r in requests_for(exact, broken)] == ["invalid_grant"]
    broken.refresh_from_db()
    assert "invalid_grant" in broken.last_error
    mail = read_mail_files(celery.mail_dir)
    assert mail_recipients(mail, "needs re-authorization") == [
        "alice@example.com",
        "bob@example.com",
        "dora@example.com",
    ]


def test_a_worker_killed_before_its_request_left_is_taken_up_by_a_later_sweep(team, exact, exact_client, celery):
    """The worker claimed the connection and started the refresh, but dies before the token request is
    sent. Modelled by holding PostgreSQL's lock on the OAuth clients table: the task reads the connection's
    OAuth client before any request and waits on it, while the sweeper's claim does not touch that table. No request ever reaches the provider, unlike a ``hang_next(then="drop")``, where one
    arrives but is never processed."""
    worker1, _ = start(celery)
    connection = connect(exact_client, exact, name="Orphaned", owner=team.alice, remaining=28)
    locked, release = threading.Event(), threading.Event()

    def hold_clients_table():
        try:
            with transaction.atomic(), db.cursor() as cursor:
                cursor.execute("LOCK TABLE oauthclients_oauthclient IN ACCESS EXCLUSIVE MODE")
                locked.set()
                release.wait(60)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_clients_table)
    holder.start()
    try:
        assert locked.wait(10)
        wait_until(lambda: _task_waiting_for_a_lock(), timeout=15, message="the refresh task to be blocked")
        first_lease = lease_of(connection)
        assert first_lease[0] is not None
        worker1.kill()
    finally:
        release.set()
        holder.join()
    assert exact.count() == 0

    celery.worker("worker2")
    wait_until(
        lambda: Connection.objects.filter(pk=connection.pk, last_refreshed_at__isnull=False).exists(),
        timeout=25,
        message="the refresh by the next sweep",
    )

    [request] = exact.token_requests
    assert request.outcome == "ok" and 0 < request.lead <= 30
    assert request.time >= first_lease[1].timestamp()  # only after the dead worker's claim ran out
    connection.refresh_from_db()
    assert connection.status == Status.ACTIVE
    assert (connection.lease_token, connection.interrupted_at, connection.last_error) == (None, None, "")
    assert exact.is_access_token_valid(connection.access_token)
    assert exact.max_concurrent_refreshes_per_chain == 1


def _task_waiting_for_a_lock() -> bool:
    # The task reads its OAuth client before any token request; the held table lock stops it there.
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE %s",
            ['SELECT %"oauthclients_oauthclient"%'],
        )
        return cursor.fetchone()[0] > 0


def test_a_worker_killed_while_waiting_for_the_answer_ends_in_needs_reauth_that_says_interrupted(
    team, exact, exact_client, celery
):
    """The provider rotated the refresh token, but the worker died before the answer arrived: the old token
    is dead. One further attempt (after the claim ran out) learns that, and the reason says why."""
    worker1, _ = start(celery)
    exact.rotate_then_hang_next(1, seconds=30)
    connection = connect(exact_client, exact, name="Lost answer", owner=team.bob, remaining=26.5)
    wait_until(lambda: refreshes(exact, "ok") == 1, timeout=15, message="the provider to rotate")
    first_lease = lease_of(connection)
    worker1.kill()

    celery.worker("worker2")
    wait_until(lambda: status_of(connection) == Status.NEEDS_REAUTH, timeout=25, message="needs_reauth")
    time.sleep(3)  # three more sweeps: no retry loop

    assert [r.outcome for r in exact.token_requests] == ["ok", "old_refresh_token"]
    assert exact.token_requests[1].time >= first_lease[1].timestamp()
    assert exact.max_concurrent_refreshes_per_chain == 1
    connection.refresh_from_db()
    assert "Old refresh token used." in connection.last_error
    assert "interrupted" in connection.last_error
    assert connection.events.filter(kind=EventKind.NEEDS_REAUTH).count() == 1
    assert connection.lease_token is None and connection.refresh_due_at is None
    mail = read_mail_files(celery.mail_dir)
    assert mail_recipients(mail, "needs re-authorization") == ["alice@example.com", "bob@example.com"]
