"""Connection rows this web process read in the last second, for the API-key fast paths.

The token API and the provider proxy with an API key (``common.fastpath``)
read one connection row per request; at a busy integration's pace that read
(a PostgreSQL round trip, its conversions and the token's decryption) is most
of the request's cost (docs/benchmarks.md). This process keeps each row it
read for ``CONNECTION_CACHE_SECONDS`` (default 1 s, 0 turns it off) and serves
the next requests for it from memory.

What keeps the copy right:

- Every decision is still made on each request with the current time: a row
  whose refresh fell due while cached goes the on-demand way, which locks and
  reads the row again (``connections.access``), so a cached row never hands
  out a token the engine has replaced on schedule.
- A lifecycle change (disconnect, delete, re-authorization, needs-reauth,
  failures, pause, resume, a person's "refresh now": every event but the
  routine ``refreshed``) is announced when its transaction commits: on the
  Redis channel ``CONNECTION_CACHE_CHANNEL``, to which every web process
  listens in a thread of its own, and at once in the process that made it.
  A listener drops the connection's rows when the message arrives
  (milliseconds).
- The copy is used only while this process listens: without ``REDIS_URL``, or
  while the subscription is down, every request reads the database. After a
  (re)subscription everything cached is dropped, since messages may have
  been missed meanwhile. A read that began before an announcement is not kept.
  Copies past their lifetime leave memory within about a second more.
- ``CONNECTION_CACHE_SECONDS`` bounds everything else, e.g. an edit of the
  OAuth client's API base URL, or a message lost on the way.

The cached ``Connection`` is shared by the requests of this process: treat it
as read-only. Nothing leaves the process: the channel carries connection ids.
"""

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from functools import partial

from django.conf import settings
from django.db import transaction

from common import metrics, redisclients

from .models import Connection

logger = logging.getLogger(__name__)

# A bound on memory for a process that serves very many connections: past it, the cache starts afresh.
MAX_ENTRIES = 10_000
RESUBSCRIBE_SECONDS = 1.0

_entries: dict[str, dict[tuple, tuple[float, Connection]]] = {}
# Bumped by every drop: a read that began before one is not kept (it may predate the change).
_generation = 0
_swept_at = 0.0
_listener: dict = {"pid": None, "listening": False}
_start_lock = threading.Lock()
_HIT, _MISS, _OFF = (metrics.CONNECTION_CACHE.labels(result) for result in ("hit", "miss", "off"))


def lifetime() -> float:
    return settings.CONNECTION_CACHE_SECONDS


def _channel() -> str:
    return settings.CONNECTION_CACHE_CHANNEL


def read(kind: str, workspace_id, connection_id: uuid.UUID, load: Callable[[], Connection | None]) -> Connection | None:
    """The row ``load()`` returns, from this process's copy when it was read less than ``lifetime()`` ago.

    ``kind`` names the read (its fields differ: the token API's, the proxy's);
    the workspace is part of the key, so a copy never crosses tenants.
    """
    if not _usable():
        _OFF.inc()
        return load()
    key = (kind, workspace_id)
    rows = _entries.get(str(connection_id))
    entry = rows.get(key) if rows else None
    if entry is not None and time.monotonic() - entry[0] <= lifetime():
        _HIT.inc()
        return entry[1]
    _MISS.inc()
    generation = _generation
    read_at = time.monotonic()
    row = load()
    if row is not None and generation == _generation:
        if len(_entries) >= MAX_ENTRIES:
            _entries.clear()
        _drop_expired(read_at)
        _entries.setdefault(str(connection_id), {})[key] = (read_at, row)
    return row


def _drop_expired(now: float) -> None:
    """At most once per lifetime (a new copy, or the listener's wake-up): drop the copies past it,
    so no decrypted token stays in memory for long."""
    global _swept_at
    if now - _swept_at < lifetime():
        return
    _swept_at = now
    oldest = now - lifetime()
    for connection_id, rows in list(_entries.items()):
        if all(read_at < oldest for read_at, _ in list(rows.values())):
            _entries.pop(connection_id, None)


def forget(connection_id) -> None:
    """Drop this process's copies of a connection's rows (it changed here)."""
    global _generation
    _generation += 1
    _entries.pop(str(connection_id), None)


def clear() -> None:
    global _generation
    _generation += 1
    _entries.clear()


def forget_on_commit(connection_id) -> None:
    """Drop this process's copies now and again when the current transaction commits (a read
    in between would see the row as it was)."""
    forget(connection_id)
    transaction.on_commit(partial(forget, connection_id))


def changed(connection_id) -> None:
    """Announce, when the current transaction commits, that a connection's row changed:
    every web process drops its copies (this one at once)."""
    transaction.on_commit(partial(_announce, str(connection_id)))


def _announce(connection_id: str) -> None:
    forget(connection_id)
    client = redisclients.for_process(settings.REDIS_URL)
    if client is None:
        return
    try:
        client.publish(_channel(), connection_id)
    except Exception:  # Redis away: the other processes' copies expire within lifetime()
        logger.warning("could not announce the change of connection %s", connection_id)


# --- The listener: one daemon thread per process -------------------------------------------------


def _usable() -> bool:
    if lifetime() <= 0 or not settings.REDIS_URL:
        return False
    if _listener["pid"] != os.getpid():
        _start_listener()
    return _listener["listening"]


def listening() -> bool:
    return _listener["pid"] == os.getpid() and _listener["listening"]


def _start_listener() -> None:
    with _start_lock:
        if _listener["pid"] == os.getpid():
            return
        _listener.update(pid=os.getpid(), listening=False)
        clear()  # rows a parent process read before a fork are not this process's to trust
        thread = threading.Thread(target=_listen, args=(settings.REDIS_URL, _channel()), daemon=True)
        thread.name = "tokenkeeper-rowcache"
        thread.start()


def _listen(url: str, channel: str) -> None:
    import redis

    pid = os.getpid()
    while _listener["pid"] == pid:
        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=2, health_check_interval=30)
            pubsub = client.pubsub()
            pubsub.subscribe(channel)
            while _listener["pid"] == pid:
                # Wakes at least once a second, so that copies past their lifetime leave memory
                # even when no request comes to replace them.
                message = pubsub.get_message(timeout=min(max(lifetime(), 0.1), 1.0))
                _drop_expired(time.monotonic())
                if message is None:
                    continue
                if message["type"] == "subscribe":  # also after redis-py reconnected on its own
                    clear()
                    _listener["listening"] = True
                elif message["type"] == "message":
                    forget(message["data"].decode())
        except Exception:
            logger.warning("connection row cache: the subscription to %s broke; reading the database", channel)
        _listener["listening"] = False
        clear()
        time.sleep(RESUBSCRIBE_SECONDS)
