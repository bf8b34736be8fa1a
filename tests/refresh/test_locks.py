"""Row locks on PostgreSQL: the sweeper skips what is being refreshed, two
sweepers never claim one connection, and twenty token-API callers racing the
sweeper's task cause exactly one token request (single flight)."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import close_old_connections, connections, transaction

from connections import threads
from connections.models import Connection
from connections.refresh import claim_due, refresh_batch
from connections.tasks import refresh_connections
from tests.fixtures.connections import make_exact_client
from tests.refresh import helpers
from tests.refresh.helpers import compressed_exact, connect, refreshes, token_url, tokens_client

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), compressed_exact]


def in_thread(function):
    """Run ``function`` with its own database connection, closed afterwards."""

    def run(*args):
        try:
            return function(*args)
        finally:
            connections.close_all()

    return run


def test_the_sweeper_skips_a_connection_whose_refresh_holds_the_row_lock(team, exact, exact_client):
    busy = connect(exact_client, exact, name="Busy", owner=team.alice, remaining=20)
    idle = connect(exact_client, exact, name="Idle", owner=team.alice, remaining=20)
    locked, release = threading.Event(), threading.Event()

    @in_thread
    def hold_lock():
        with transaction.atomic():
            Connection.objects.select_for_update().get(pk=busy.pk)
            locked.set()
            release.wait(10)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(10)
        ids, _ = claim_due()
    finally:
        release.set()
        holder.join()

    assert ids == [idle.pk]
    assert Connection.objects.get(pk=busy.pk).lease_token is None
    assert claim_due()[0] == [busy.pk]  # free again once the lock is gone


def test_sweepers_running_at_once_never_claim_the_same_connection(team, exact, exact_client):
    expected = {connect(exact_client, exact, name=f"Due {i}", owner=team.alice, remaining=20).pk for i in range(30)}
    start = threading.Barrier(4)

    @in_thread
    def sweeper(_):
        start.wait()
        claimed = []
        while ids := claim_due(limit=3)[0]:
            claimed.extend(ids)
        return claimed

    with ThreadPoolExecutor(4) as pool:
        claims = list(pool.map(sweeper, range(4)))

    everything = [pk for claim in claims for pk in claim]
    assert sorted(everything) == sorted(expected)  # each exactly once
    assert len(set(Connection.objects.values_list("lease_token", flat=True))) >= 2


def test_twenty_token_api_callers_and_the_sweepers_task_make_one_token_request(team, exact, exact_client):
    exact.latency = 0.5  # the provider is slow: everyone piles up on the row lock
    connection = connect(exact_client, exact, name="Hot", owner=team.alice, remaining=20)
    clients = [tokens_client(team.a) for _ in range(20)]
    ids, lease = claim_due()  # the sweeper claimed it; its task runs alongside the callers
    assert ids == [connection.pk]
    start = threading.Barrier(21)

    @in_thread
    def call(client):
        start.wait()
        response = client.get(token_url(connection))
        return response.status_code, response.json()

    @in_thread
    def task():
        start.wait()
        (outcome,) = refresh_connections([str(connection.pk)], str(lease))
        return outcome

    with ThreadPoolExecutor(21) as pool:
        task_result = pool.submit(task)
        answers = list(pool.map(call, clients))
    close_old_connections()

    connection.refresh_from_db()
    assert refreshes(exact) == 1
    assert exact.max_concurrent_refreshes_per_chain == 1
    assert task_result.result() in {"refreshed", "skipped"}
    assert {status for status, _ in answers} == {200}
    assert {body["access_token"] for _, body in answers} == {connection.access_token}
    assert exact.is_access_token_valid(connection.access_token)
    assert connection.lease_token is None


@pytest.fixture
def refresh_threads(settings):
    settings.REFRESH_THREADS = 4
    yield 4
    threads.stop()  # their database connections, before the test database is flushed


def test_a_batch_refreshes_side_by_side_on_threads_each_connection_under_its_own_lock(team, refresh_threads):
    """A worker process does not sit idle while the provider answers: the batch's
    token requests overlap, each connection still gets exactly one."""
    with helpers.exact_emulator(latency=0.3) as slow:
        client = make_exact_client(team.a, team.alice, slow)
        batch = [connect(client, slow, name=f"Side {i}", owner=team.alice, remaining=20) for i in range(4)]
        ids, lease = claim_due()

        counts = refresh_batch(connection_ids=ids, lease_token=lease)

        assert counts == {"refreshed": 4}
        requests = [r for r in slow.token_requests if r.grant_type == "refresh_token"]
        assert sorted(r.outcome for r in requests) == ["ok"] * 4
        first_answer = min(r.finished for r in requests)
        assert sum(r.started < first_answer for r in requests) > 1  # several in flight at once
        assert slow.max_concurrent_refreshes_per_chain == 1
    for connection in batch:
        connection.refresh_from_db()
        assert connection.lease_token is None and connection.refresh_due_at > connection.last_refreshed_at
