"""No single beat to lose: two beats run, RedBeat's lock in Redis lets one send the sweeps; when it
dies the other takes over within the lock's timeout, and no refresh is missed (real worker and beats,
the Exact Online emulator with 40 s tokens and a 30 s window)."""

import time
from datetime import datetime

import pytest

from tests.fixtures.workers import ENGINE_ENV
from tests.refresh.helpers import compressed_exact, connect, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True), compressed_exact]

LOCK_SECONDS = int(ENGINE_ENV["BEAT_LOCK_SECONDS"])  # 5 s in the tests, 10 s by default
SWEEP = "Sending due task refresh-sweep"


def sweep_times(beat) -> list[float]:
    """When this beat sent a sweep (from its log lines' timestamps)."""
    return [
        datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp()
        for line in beat.text().splitlines()
        if SWEEP in line
    ]


def holds_lock(beat) -> bool:
    return "beat: Acquired lock" in beat.text()


def test_two_beats_one_sweeps_and_the_other_takes_over_when_it_dies(team, exact, exact_client, celery):
    worker = celery.worker(queues="refresh", wait=False)
    first, second = celery.beat("beat1", wait=False), celery.beat("beat2", wait=False)
    for process in (worker, first, second):
        process.wait_ready()
    active = wait_until(lambda: next((b for b in (first, second) if holds_lock(b)), None), timeout=15, message="a lock")
    standby = second if active is first else first
    wait_until(lambda: len(sweep_times(active)) >= 3, timeout=15, message="three sweeps")
    assert not holds_lock(standby) and sweep_times(standby) == []  # waiting, not sweeping

    # Refreshes falling due over the next 8 s (due = expiry - 25 s), across the takeover.
    fleet = [connect(exact_client, exact, name=f"Company {i}", owner=team.alice, remaining=26 + i) for i in range(8)]
    active.kill()  # SIGKILL: the lock is not released, it runs out
    killed_at = time.time()

    wait_until(lambda: sweep_times(standby), timeout=LOCK_SECONDS + 15, message="the standby's first sweep")
    takeover = sweep_times(standby)[0] - killed_at
    print(f"\ntakeover after {takeover:.1f} s (lock {LOCK_SECONDS} s)")
    assert holds_lock(standby)
    assert takeover <= LOCK_SECONDS + 3  # the lock runs out, the standby tries it every second, then sweeps

    wait_until(
        lambda: all(g.refresh_count >= 1 for g in exact.grants), timeout=40, message="every connection refreshed"
    )
    print(f"leads before expiry: {sorted(round(lead, 1) for lead in exact.refresh_leads)}")
    assert len(exact.refresh_leads) == len(fleet)
    assert all(0 < lead <= 30 for lead in exact.refresh_leads), exact.refresh_leads  # none missed its window
    assert set(exact.outcomes) == {"ok"}, exact.outcomes
    assert exact.max_concurrent_refreshes_per_chain == 1
