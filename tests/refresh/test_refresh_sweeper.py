"""The sweeper's claims (leases) and the refresh task's checks, in-process.

The same logic runs under PostgreSQL row locks in ``test_locks.py``; here it
is the bookkeeping: who may claim what, and when a task must do nothing.
"""

import uuid
from datetime import timedelta

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings as django_settings
from django.utils import timezone

from connections import refresh, tasks
from connections.access import connection_access_token
from connections.models import Connection, EventKind, Status
from connections.oauth import CONNECT_TIMEOUT, READ_TIMEOUT
from connections.refresh import batch_seconds as refresh_batch_seconds
from connections.refresh import claim_due, split_claim
from connections.tasks import refresh_connections, refresh_sweep
from tests.refresh.helpers import compressed_exact, connect, refreshes

pytestmark = compressed_exact


@pytest.fixture
def make(team, exact_client, exact):
    def make(name: str, remaining: float = 20, **fields) -> Connection:
        connection = connect(exact_client, exact, name=name, owner=team.alice, remaining=remaining)
        if fields:
            Connection.objects.filter(pk=connection.pk).update(**fields)
            connection.refresh_from_db()
        return connection

    return make


def run_claimed(connection_id, lease) -> str:
    """The production task for one claimed id; how it ended."""
    (outcome,) = refresh_connections([str(connection_id)], str(lease))
    return outcome


def leases(*connections) -> list[tuple]:
    return [
        Connection.objects.values_list("lease_token", "lease_expires_at", "interrupted_at").get(pk=c.pk)
        for c in connections
    ]


def test_the_sweeper_claims_only_due_unleased_connections_and_writes_the_lease(make, settings):
    settings.REFRESH_LEASE_SECONDS = 42
    now = timezone.now()
    due = make("Due")
    not_due = make("Not due", remaining=40)
    held = make("Held", lease_token=uuid.uuid4(), lease_expires_at=now + timedelta(seconds=30))
    broken = make("Broken", status=Status.NEEDS_REAUTH, refresh_due_at=None)

    ids, lease = claim_due()

    assert ids == [due.pk]
    [(token, expires, interrupted)] = leases(due)
    assert token == lease and interrupted is None
    assert timedelta(seconds=41) < expires - now < timedelta(seconds=43)
    assert leases(not_due)[0][0] is None and leases(broken)[0][0] is None
    assert leases(held)[0][0] == held.lease_token  # untouched
    assert claim_due()[0] == []  # claimed once, not twice


def test_a_lease_that_ran_out_is_claimed_again_and_marked_interrupted(make):
    stale = make("Stale", lease_token=uuid.uuid4(), lease_expires_at=timezone.now() - timedelta(seconds=5))

    ids, lease = claim_due()

    assert ids == [stale.pk]
    [(token, _, interrupted)] = leases(stale)
    assert token == lease != stale.lease_token
    assert interrupted == stale.lease_expires_at


def test_a_task_whose_lease_was_taken_over_does_nothing(make, exact):
    connection = make("Taken over")
    _, first = claim_due()
    Connection.objects.filter(pk=connection.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    _, second = claim_due()

    assert run_claimed(connection.pk, first) == "skipped"
    assert refreshes(exact) == 0
    assert leases(connection)[0][0] == second  # the new claim is left alone

    assert run_claimed(connection.pk, second) == "refreshed"
    assert leases(connection) == [(None, None, None)]  # released; the interruption is history


def test_a_redelivered_task_is_harmless(make, exact):
    connection = make("Twice")
    _, lease = claim_due()

    results = [run_claimed(connection.pk, lease) for _ in range(3)]

    assert results == ["refreshed", "skipped", "skipped"]
    assert refreshes(exact) == 1


def test_a_queued_task_does_nothing_after_the_token_api_refreshed_on_demand(make, exact):
    connection = make("Raced")
    _, lease = claim_due()

    connection_access_token(connection=connection)
    assert run_claimed(connection.pk, lease) == "skipped"

    assert refreshes(exact) == 1
    assert leases(connection)[0][0] is None


def test_a_task_for_a_connection_no_longer_due_releases_its_lease(make, exact):
    connection = make("Moved on")
    _, lease = claim_due()
    Connection.objects.filter(pk=connection.pk).update(refresh_due_at=timezone.now() + timedelta(seconds=10))

    assert run_claimed(connection.pk, lease) == "skipped"
    assert leases(connection)[0][0] is None
    assert refreshes(exact) == 0


def test_the_sweep_task_queues_one_task_per_claim_when_few_are_due(make, monkeypatch, settings):
    settings.REFRESH_LEASE_SECONDS = 17
    first, second = make("First"), make("Second")
    make("Later", remaining=40)
    sent = []
    monkeypatch.setattr(refresh_connections, "apply_async", lambda args, **options: sent.append((args, options)))

    assert refresh_sweep() == 2

    lease = str(Connection.objects.get(pk=first.pk).lease_token)
    assert sorted(sent) == sorted(
        [([[str(first.pk)], lease], {"expires": 17}), ([[str(second.pk)], lease], {"expires": 17})]
    )
    assert refresh_sweep() == 0


def test_the_sweep_task_batches_claims_when_more_are_due_than_workers(make, monkeypatch, settings):
    settings.REFRESH_BATCH_FANOUT = 2
    connections = [make(f"Due {i}", remaining=20 - i) for i in range(5)]
    sent = []
    monkeypatch.setattr(refresh_connections, "apply_async", lambda args, **options: sent.append(args))

    assert refresh_sweep() == 5

    assert [len(ids) for ids, _ in sent] == [3, 2]
    assert sorted(i for ids, _ in sent for i in ids) == sorted(str(c.pk) for c in connections)
    assert len({lease for _, lease in sent}) == 1


@pytest.mark.parametrize(
    ("due", "fanout", "largest", "sizes"),
    [
        (0, 32, 20, []),
        (3, 32, 20, [1, 1, 1]),
        (32, 32, 20, [1] * 32),
        (100, 32, 20, [4] * 25),
        (500, 32, 20, [16] * 31 + [4]),
        (1000, 32, 20, [20] * 50),
    ],
)
def test_claims_spread_over_the_workers_in_batches_of_at_most_the_maximum(due, fanout, largest, sizes):
    batches = split_claim(list(range(due)), fanout=fanout, max_size=largest)

    assert [len(b) for b in batches] == sizes
    assert [i for b in batches for i in b] == list(range(due))


def test_a_batch_refreshes_each_claimed_connection_under_its_own_lock(make, exact):
    connections = [make(f"Batch {i}") for i in range(3)]
    taken = make("Taken over")
    ids, lease = claim_due()
    Connection.objects.filter(pk=taken.pk).update(lease_token=uuid.uuid4())

    counts = refresh_connections([str(i) for i in ids], str(lease))

    assert counts == {"refreshed": 3, "skipped": 1}
    assert refreshes(exact) == 3
    assert leases(*connections) == [(None, None, None)] * 3
    assert all(c.events.filter(kind=EventKind.REFRESHED).count() == 1 for c in connections)


def test_a_batch_past_its_deadline_releases_the_rest_for_the_next_sweep(make, exact, settings):
    settings.REFRESH_BATCH_SECONDS = 0  # the deadline has passed once the first refresh is done
    for i in range(3):
        make(f"Slow batch {i}", remaining=20 - i)
    ids, lease = claim_due()

    counts = refresh_connections([str(i) for i in ids], str(lease))

    assert counts == {"refreshed": 1, "released": 2}
    assert refreshes(exact) == 1
    first, *rest = (Connection.objects.get(pk=i) for i in ids)
    assert first.events.filter(kind=EventKind.REFRESHED).exists()
    assert leases(*rest) == [(None, None, None)] * 2  # released, not marked interrupted
    again, _ = claim_due()
    assert sorted(again) == sorted(c.pk for c in rest)


def test_an_unexpected_error_on_one_connection_does_not_stop_the_rest_of_its_batch(make, exact, monkeypatch):
    connections = [make(f"Batch {i}", remaining=20 - i) for i in range(3)]
    ids, lease = claim_due()
    original = refresh.refresh_claimed

    def broken_for_the_first(*, connection_id, **kwargs):
        if connection_id == str(ids[0]):
            raise RuntimeError("database went away")
        return original(connection_id=connection_id, **kwargs)

    monkeypatch.setattr(refresh, "refresh_claimed", broken_for_the_first)

    assert refresh_connections([str(i) for i in ids], str(lease)) == {"error": 1, "refreshed": 2}
    assert refreshes(exact) == 2
    failed = next(c for c in connections if c.pk == ids[0])
    assert leases(failed)[0][0] == lease  # kept: the claim runs out and a later sweep tries again


def test_a_batch_out_of_time_stops_instead_of_carrying_on(make, exact, monkeypatch):
    for i in range(2):
        make(f"Batch {i}")
    ids, lease = claim_due()

    def out_of_time(**kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(refresh, "refresh_claimed", out_of_time)

    with pytest.raises(SoftTimeLimitExceeded):
        refresh_connections([str(i) for i in ids], str(lease))


def test_a_lease_outlives_the_refresh_tasks_hard_time_limit():
    """Otherwise a slow but live refresh could be claimed a second time."""
    assert django_settings.REFRESH_LEASE_SECONDS > django_settings.REFRESH_TASK_TIME_LIMIT
    assert refresh_connections.time_limit == django_settings.REFRESH_TASK_TIME_LIMIT
    assert 0 < refresh_connections.soft_time_limit < refresh_connections.time_limit


def test_the_last_refresh_a_batch_starts_has_the_token_calls_full_timeouts_before_the_hard_limit():
    assert refresh_batch_seconds() + CONNECT_TIMEOUT + READ_TIMEOUT < refresh_connections.soft_time_limit


@pytest.mark.parametrize(("hard", "soft"), [(150, 140), (5, 4), (12, 9.6)])
def test_the_soft_time_limit_stays_positive_for_short_hard_limits(hard, soft):
    assert tasks.soft_time_limit_for(hard) == pytest.approx(soft)


def test_when_more_are_due_than_claimed_the_tokens_closest_to_expiring_go_first(make):
    now = timezone.now()
    later = make("Due, 20 s left", remaining=20)
    soonest = make("Due, 6 s left", remaining=6)
    lost = make("Expired 3 s ago", refresh_due_at=now - timedelta(seconds=30))
    Connection.objects.filter(pk=lost.pk).update(access_token_expires_at=now - timedelta(seconds=3))
    middle = make("Due, 12 s left", remaining=12)

    assert claim_due(limit=3)[0] == [soonest.pk, middle.pk, later.pk]  # savable tokens first, soonest first
    assert claim_due(limit=3)[0] == [lost.pk]
