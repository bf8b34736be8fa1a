"""Refresh threads: a worker process runs a batch's refreshes side by side.

A refresh spends most of its time waiting for the provider; threads keep the
process busy meanwhile (``REFRESH_THREADS``; docs/refresh-engine.md,
"Batches"). Each thread keeps its own database connection, checked the way
Django checks one around a request.
"""

import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from django.conf import settings
from django.db import close_old_connections, connections

Item = TypeVar("Item")
Result = TypeVar("Result")

_pool: ThreadPoolExecutor | None = None
_pool_pid: int | None = None
_pool_size = 0
_thread_state = threading.local()


def run_each(
    function: Callable[[Item], Result], items: list[Item], *, failed: Callable[[Result], bool] = lambda _: False
) -> Iterable[Result]:
    """``function`` over ``items``, up to ``REFRESH_THREADS`` at once, results in order.

    With one thread (or one item) it runs here, in the caller's thread and
    transaction. ``failed(result)`` tells a thread to check its database
    connection before its next item.
    """
    if min(settings.REFRESH_THREADS, len(items)) <= 1:
        return [function(item) for item in items]
    return list(_thread_pool().map(_with_own_connection(function, failed), items))


def _thread_pool() -> ThreadPoolExecutor:
    """This process's refresh threads (a forked worker process makes its own)."""
    global _pool, _pool_pid, _pool_size
    if _pool is None or _pool_pid != os.getpid():
        _pool_size = settings.REFRESH_THREADS
        _pool = ThreadPoolExecutor(max_workers=_pool_size, thread_name_prefix="refresh")
        _pool_pid = os.getpid()
    return _pool


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
