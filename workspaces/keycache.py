"""API keys this process has seen in the last few seconds, so that a busy
integration's requests cost no key query.

Integrations ask for a token before every job and often before every call:
the key lookup (a query with its workspace) was half of the token API's
database work. An entry lives ``API_KEY_CACHE_SECONDS`` (default 5 s); after
that the next request reads the key again. So a revoked key stops working at
once in the process that revoked it and within ``API_KEY_CACHE_SECONDS`` in
every other web process. The entry holds the key row as read (its workspace,
scopes and hash); the raw secret is checked against the hash on every request,
as on the database path. Entries are per process (a dict), never shared
through Redis: nothing about a key leaves the process, and a lookup costs no
network round trip.

The cached ``ApiKey`` is shared by the requests of this process until it
expires: treat it (and its ``workspace``) as read-only.
"""

import time

from django.conf import settings

from .keys import api_key_matches, parse_api_key_prefix
from .models import ApiKey

_entries: dict[str, tuple[float, ApiKey]] = {}
# A bound on memory for a process that sees very many keys: past it, the cache starts afresh.
MAX_ENTRIES = 10_000


def lifetime() -> float:
    return settings.API_KEY_CACHE_SECONDS


def recent(raw: str) -> ApiKey | None:
    """The key of this raw secret if it was read in the last ``lifetime()`` seconds, else None."""
    prefix = parse_api_key_prefix(raw)
    entry = _entries.get(prefix) if prefix else None
    if entry is None:
        return None
    read_at, key = entry
    if time.monotonic() - read_at > lifetime() or not api_key_matches(raw, key.key_hash):
        return None
    return key


def remember(key: ApiKey) -> None:
    if lifetime() <= 0:
        return
    if len(_entries) >= MAX_ENTRIES:
        _entries.clear()
    _entries[key.prefix] = (time.monotonic(), key)


def forget(prefix: str) -> None:
    """Drop a key from this process's cache (it was revoked here)."""
    _entries.pop(prefix, None)


def clear() -> None:
    _entries.clear()
