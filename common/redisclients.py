"""One Redis client per process and URL, for the few places that talk to Redis directly
(the proxy's rate budget, the connection row cache's announcements).

A client holds a connection pool; a forked process (a prefork worker, a gunicorn
worker) must not use its parent's sockets, so clients are kept per process id.
Short timeouts: a Redis that does not answer costs a request 2 s, not a hang.
"""

import os
import threading

_clients: dict[tuple[int, str], object] = {}
_lock = threading.Lock()


def for_process(url: str):
    """This process's client for ``url``; None when ``url`` is empty (no Redis configured)."""
    if not url:
        return None
    key = (os.getpid(), url)
    client = _clients.get(key)
    if client is None:
        import redis

        with _lock:
            client = _clients.get(key)
            if client is None:
                client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
                for stale in [k for k in _clients if k[0] != key[0]]:  # a forked child drops its parent's
                    del _clients[stale]
                _clients[key] = client
    return client
