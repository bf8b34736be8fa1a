"""Groups: a worker refreshes several claimed connections under one transaction
(``refresh_group``), on PostgreSQL with the Exact Online emulator as the peer.

Every connection of a group still gets exactly what a refresh of its own
would: one token request, its own outcome, and its rotated token stored,
also when another connection of the same group fails."""

import uuid

import pytest
from django.db import DatabaseError

from connections import refresh, threads, worker_rows
from connections.models import Connection, EventKind, Status
from connections.oauth import TRANSIENT, TokenEndpointError
from connections.refresh import claim_due, refresh_batch
from tests.refresh.helpers import compressed_exact, connect, refreshes

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), compressed_exact]


@pytest.fixture
def groups_of_four(settings):
    settings.REFRESH_THREADS = 8
    settings.REFRESH_GROUP_SIZE = 4
    yield
    threads.stop()  # their database connections, before the test database is flushed


@pytest.fixture
def due(team, exact, exact_client):
    def make(count: int) -> list[Connection]:
        return [
            connect(exact_client, exact, name=f"Group {i}", owner=team.alice, remaining=20 - i) for i in range(count)
        ]

    return make


def stored(connection: Connection, exact) -> Connection:
    """The connection as stored, checked against the provider: its tokens are the live ones."""
    connection.refresh_from_db()
    assert connection.lease_token is None
    assert exact.is_access_token_valid(connection.access_token)
    assert connection.events.filter(kind=EventKind.REFRESHED).count() == 1
    return connection


def test_a_batch_in_groups_refreshes_each_connection_once_with_the_groups_requests_side_by_side(
    groups_of_four, due, exact
):
    connections = due(8)
    exact.set_latency(0.2)
    ids, lease = claim_due()

    assert refresh_batch(connection_ids=ids, lease_token=lease) == {"refreshed": 8}

    assert threads.group_threads() == 2
    assert refreshes(exact, "ok") == refreshes(exact) == 8
    assert exact.max_concurrent_refreshes_per_chain == 1
    requests = exact.token_requests
    first_answer = min(r.finished for r in requests)
    assert sum(r.started < first_answer for r in requests) > 1  # a group's requests overlap
    for connection in connections:
        assert stored(connection, exact).status == Status.ACTIVE


def test_each_connection_of_a_group_gets_its_own_outcome(groups_of_four, due, exact, monkeypatch):
    ok_1, revoked, failing, ok_2 = due(4)
    exact.revoke(revoked.refresh_token)
    send = refresh.refresh_tokens

    def unavailable_for_one(client, *, refresh_token):
        if refresh_token == failing.refresh_token:
            raise TokenEndpointError("The token endpoint answered 503.", kind=TRANSIENT, status=503)
        return send(client, refresh_token=refresh_token)

    monkeypatch.setattr(refresh, "refresh_tokens", unavailable_for_one)
    ids, lease = claim_due()

    counts = refresh_batch(connection_ids=ids, lease_token=lease)

    assert counts == {"refreshed": 2, "needs_reauth": 1, "failed": 1}
    revoked.refresh_from_db()
    assert revoked.status == Status.NEEDS_REAUTH and revoked.lease_token is None
    assert revoked.events.filter(kind=EventKind.NEEDS_REAUTH).count() == 1
    before = failing.refresh_token
    failing.refresh_from_db()
    assert failing.status == Status.REFRESH_FAILING and failing.lease_token is None
    assert failing.refresh_failures == 1 and failing.refresh_token == before
    assert failing.refresh_due_at > failing.last_error_at
    assert failing.events.filter(kind=EventKind.REFRESH_FAILED).count() == 1
    for connection in (ok_1, ok_2):
        assert stored(connection, exact).status == Status.ACTIVE


def test_a_group_whose_transaction_fails_after_the_token_requests_stores_every_answer_on_its_own(
    groups_of_four, due, exact, monkeypatch
):
    """The provider rotated every refresh token of the group: none may be lost."""
    connections = due(4)
    original, calls = worker_rows.save_columns, []

    def fails_once(connection, names):
        calls.append(connection.pk)
        if len(calls) == 2:  # the second row of the group's transaction: the first one's UPDATE rolls back too
            raise DatabaseError("server closed the connection unexpectedly")
        return original(connection, names)

    monkeypatch.setattr(worker_rows, "save_columns", fails_once)
    ids, lease = claim_due()

    assert refresh_batch(connection_ids=ids, lease_token=lease) == {"refreshed": 4}

    assert refreshes(exact, "ok") == refreshes(exact) == 4  # no second token request
    for connection in connections:
        assert stored(connection, exact).token_calls == 1


def test_a_connection_whose_answer_cannot_be_stored_keeps_its_claim_and_the_rest_of_its_group_is_stored(
    groups_of_four, due, exact, monkeypatch
):
    broken, *others = due(4)
    original = worker_rows.save_columns

    def fails_for_one(connection, names):
        if connection.pk == broken.pk:
            raise DatabaseError("value too long for type character varying(40)")
        return original(connection, names)

    monkeypatch.setattr(worker_rows, "save_columns", fails_for_one)
    ids, lease = claim_due()

    assert refresh_batch(connection_ids=ids, lease_token=lease) == {"refreshed": 3, "error": 1}

    assert refreshes(exact) == 4
    broken.refresh_from_db()
    assert broken.lease_token == lease  # kept: the claim runs out and a later sweep tries again
    assert not broken.events.filter(kind=EventKind.REFRESHED).exists()
    for connection in others:
        stored(connection, exact)


def test_a_group_that_fails_before_its_token_requests_refreshes_each_connection_on_its_own(
    groups_of_four, due, exact, monkeypatch
):
    connections = due(4)
    original, calls = refresh._before_request, []

    def fails_once(connection, **kwargs):
        calls.append(connection.pk)
        if len(calls) == 1:
            raise DatabaseError("canceling statement due to statement timeout")
        return original(connection, **kwargs)

    monkeypatch.setattr(refresh, "_before_request", fails_once)
    ids, lease = claim_due()

    assert refresh_batch(connection_ids=ids, lease_token=lease) == {"refreshed": 4}

    assert refreshes(exact) == 4
    for connection in connections:
        assert stored(connection, exact).token_calls == 1


def test_a_group_skips_what_it_no_longer_owns_and_refreshes_the_rest(groups_of_four, due, exact):
    gone, taken, *mine = due(4)
    ids, lease = claim_due()
    gone.delete()
    Connection.objects.filter(pk=taken.pk).update(lease_token=uuid.uuid4())

    assert refresh_batch(connection_ids=ids, lease_token=lease) == {"refreshed": 2, "skipped": 2}

    assert refreshes(exact) == 2
    for connection in mine:
        stored(connection, exact)


def test_a_group_that_fails_while_its_requests_are_out_never_sends_a_second_one(
    groups_of_four, due, exact, monkeypatch
):
    """The answers are unknown: a second request with the same refresh token would be refused
    and cost the connection its grant (Exact Online rotates refresh tokens)."""
    connections = due(4)
    call_each = threads.call_each

    def sent_then_lost(function, items):
        call_each(function, items)
        raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    monkeypatch.setattr(threads, "call_each", sent_then_lost)
    ids, lease = claim_due()

    assert refresh_batch(connection_ids=ids, lease_token=lease) == {"error": 4}

    assert refreshes(exact) == 4
    for connection in connections:
        connection.refresh_from_db()
        assert connection.lease_token == lease  # the claims run out; the next attempt knows it was interrupted
