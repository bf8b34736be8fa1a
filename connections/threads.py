"""Refresh threads: a worker process runs a batch's refreshes side by side.

A refresh spends most of its time waiting for the provider; threads keep the
process busy meanwhile (docs/refresh-engine.md, "Batches"). Two kinds:

- **group threads** (``run_each``): each takes a group of up to
  ``REFRESH_GROUP_SIZE`` connections through one transaction, and keeps its
  own database connection, checked the way Django checks one around a
  request;
- **call threads** (``call_each``): the group's token requests, side by side,
  without a database connection.

``REFRESH_THREADS`` is how many token requests a process has in flight at
most; ``REFRESH_THREADS / REFRESH_GROUP_SIZE`` group threads (rounded up)
keep them busy, so a worker process holds that many database connections
instead of one per request in flight.
"""

import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import close_old_connections, connections

Item = TypeVar("Item")
Result = TypeVar("Result")

_pool: ThreadPoolExecutor | None = None
_pool_pid: int | None = None
_pool_size = 0
_calls: ThreadPoolExecutor | None = None
_calls_pid: int | None = None
_thread_state = threading.local()


def group_size() -> int:
    """How many claimed connections share one transaction (at most one per request in flight)."""
    return max(1, min(settings.REFRESH_GROUP_SIZE, settings.REFRESH_THREADS))


def group_threads() -> int:
    return math.ceil(settings.REFRESH_THREADS / group_size())


def run_each(
    function: Callable[[Item], Result], items: list[Item], *, failed: Callable[[Result], bool] = lambda _: False
) -> Iterable[Result]:
    """``function`` over ``items`` on the group threads, results in order.

    With one group thread (or one item) it runs here, in the caller's thread
    and transaction. ``failed(result)`` tells a thread to check its database
    connection before its next item.
    """
    if min(group_threads(), len(items)) <= 1:
        return [function(item) for item in items]
    return list(_thread_pool().map(_with_own_connection(function, failed), items))


def _thread_pool() -> ThreadPoolExecutor:
    """This process's refresh threads (a forked worker process makes its own)."""
    global _pool, _pool_pid, _pool_size
    if _pool is None or _pool_pid != os.getpid():
        _pool_size = group_threads()
        _pool = ThreadPoolExecutor(max_workers=_pool_size, thread_name_prefix="refresh")
        _pool_pid = os.getpid()
    return _pool


def call_each(function: Callable[[Item], Result], items: list[Item]) -> list[Result | BaseException]:
    """``function`` over ``items`` side by side, each result or the exception it raised, in order.

    The first runs in the calling thread, the others on the call threads; no
    database connection is used or opened there. One at a time with
    ``REFRESH_THREADS = 1``.
    """

    def outcome(item: Item) -> Result | Exception:
        try:
            return function(item)
        except SoftTimeLimitExceeded:
            raise  # the task is out of time (raised in the calling thread): stop
        except Exception as error:  # handed back to the caller, which decides per item
            return error

    if settings.REFRESH_THREADS <= 1 or len(items) <= 1:
        return [outcome(item) for item in items]
    futures = [_call_pool().submit(outcome, item) for item in items[1:]]
    first = outcome(items[0])
    return [first, *(future.result() for future in futures)]


def _call_pool() -> ThreadPoolExecutor:
    global _calls, _calls_pid
    if _calls is None or _calls_pid != os.getpid():
        # Each group thread sends one of its requests itself: REFRESH_THREADS in flight at most.
        size = max(1, settings.REFRESH_THREADS - group_threads())
        _calls = ThreadPoolExecutor(max_workers=size, thread_name_prefix="refresh-call")
        _calls_pid = os.getpid()
    return _calls


def _with_own_connection(function: Callable, failed: Callable) -> Callable:
    """Each pool thread keeps its own database connection. It is checked (dropped
    when broken or older than CONN_MAX_AGE) after a failure, and otherwise at
    most once a second: the check costs a round trip to PostgreSQL."""

    def run(item):
        if getattr(_thread_state, "failed", False) or time.monotonic() - getattr(_thread_state, "checked", 0.0) > 1:
            close_old_connections()
            _thread_state.checked = time.monotonic()
        _thread_state.failed = True  # stays so if function raises
        result = function(item)
        _thread_state.failed = failed(result)
        return result

    return run


def stop() -> None:
    """Close each refresh thread's database connection and stop the threads
    (a worker process shutting down; tests)."""
    global _pool, _calls
    calls, _calls = _calls, None
    if calls is not None and _calls_pid == os.getpid():
        calls.shutdown(wait=True)
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
