"""Running the sweeper's claims: split into tasks, refreshed on threads.

``refresh_batches`` decides how a claim becomes tasks; ``connections_refresh_claimed``
runs one task's ids, ``REFRESH_THREADS`` at a time, each through
``connections.refresh.connection_refresh`` (its own row lock, lease check and
transaction). Why and how it is sized: docs/refresh-engine.md, "Batches".
"""

import logging
import math
import os
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import close_old_connections, connections

from . import refresh
from .models import Connection

logger = logging.getLogger(__name__)


def refresh_batches(ids: list, *, fanout: int | None = None, max_size: int | None = None) -> list[list]:
    """Split claimed ids into tasks: one per worker process while that keeps
    them at most ``REFRESH_BATCH_MAX`` long, and single ids when few are due.

    With ``fanout`` the number of worker processes, n due ids become
    min(n, fanout) tasks of ceil(n / fanout) ids: every process gets work,
    and under load each Celery message carries several refreshes.
    """
    fanout = fanout or settings.REFRESH_BATCH_FANOUT
    max_size = max_size or settings.REFRESH_BATCH_MAX
    size = min(max_size, max(1, math.ceil(len(ids) / fanout)))
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def batch_seconds() -> float:
    """How long a batch task keeps starting refreshes; the rest are released.

    A tenth of the task's hard time limit at most, so the last refresh started
    still has the token call's full timeouts before the limit.
    """
    return min(settings.REFRESH_BATCH_SECONDS, settings.REFRESH_TASK_TIME_LIMIT / 10)


_pool: ThreadPoolExecutor | None = None
_pool_pid: int | None = None
_pool_size = 0


def _thread_pool() -> ThreadPoolExecutor:
    """This process's refresh threads (a forked worker process makes its own)."""
    global _pool, _pool_pid, _pool_size
    if _pool is None or _pool_pid != os.getpid():
        _pool_size = settings.REFRESH_THREADS
        _pool = ThreadPoolExecutor(max_workers=_pool_size, thread_name_prefix="refresh")
        _pool_pid = os.getpid()
    return _pool


def refresh_threads_stop() -> None:
    """Close each refresh thread's database connection and stop the threads
    (a worker process shutting down; tests)."""
    global _pool
    pool, _pool = _pool, None
    if pool is None or _pool_pid != os.getpid():
        return
    # One job per thread: none finishes before all have started, so each thread gets one.
    barrier = threading.Barrier(_pool_size)

    def close() -> None:
        try:
            barrier.wait(timeout=30)
        finally:
            connections.close_all()

    for future in [pool.submit(close) for _ in range(_pool_size)]:
        future.exception()
    pool.shutdown(wait=True)


_thread_state = threading.local()


def _with_own_connection(function):
    """Each pool thread keeps its own database connection. It is checked the
    way Django checks one around a request (dropped when broken or older than
    CONN_MAX_AGE) after an error, and otherwise at most once a second: the
    check costs a round trip to PostgreSQL."""

    def run(*args):
        if getattr(_thread_state, "failed", False) or time.monotonic() - getattr(_thread_state, "checked", 0.0) > 1:
            close_old_connections()
            _thread_state.checked = time.monotonic()
        _thread_state.failed = True
        result = function(*args)
        _thread_state.failed = result[1] == "error"
        return result

    return run


def connections_refresh_claimed(*, connection_ids: list, lease_token: uuid.UUID) -> dict[str, int]:
    """Refresh a batch of connections claimed with ``lease_token``.

    Up to ``REFRESH_THREADS`` at once (threads of this worker process, each
    with its own database connection), so a process is not idle while the
    provider answers; each refresh is ``connection_refresh`` with its own row
    lock, lease check and transaction, exactly as for a single id. Past
    ``batch_seconds()`` (a slow provider) the ids not started yet are
    released, so the next sweep claims them again for other workers instead
    of them waiting here. Returns how many ended how: ``{"refreshed": 9, "skipped": 1, ...}``.
    """
    deadline = time.monotonic() + batch_seconds()

    def one(item) -> tuple:
        index, connection_id = item
        if index and time.monotonic() > deadline:
            Connection.objects.filter(id=connection_id, lease_token=lease_token).update(
                lease_token=None, lease_expires_at=None
            )
            return connection_id, "released"
        try:
            return connection_id, refresh.connection_refresh(
                connection_id=connection_id, lease_token=lease_token
            ).result
        except SoftTimeLimitExceeded:
            raise  # the task is out of time: stop here
        except Exception:
            # Not the provider's answer (those are outcomes): e.g. the database went away. The
            # transaction rolled back; the claim runs out and a later sweep tries again.
            logger.exception("refresh of connection %s failed unexpectedly", connection_id)
            return connection_id, "error"

    items = list(enumerate(connection_ids))
    if min(settings.REFRESH_THREADS, len(items)) > 1:
        results = list(_thread_pool().map(_with_own_connection(one), items))
    else:
        results = [one(item) for item in items]
    counts = dict(Counter(result for _, result in results))
    if counts.get("released"):
        logger.warning(
            "refresh batch ran past %.0f s: released %d of %d claims for the next sweep",
            batch_seconds(),
            counts["released"],
            len(connection_ids),
        )
    return counts
