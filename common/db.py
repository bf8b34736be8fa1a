"""Database health checks where they can catch something.

With ``CONN_HEALTH_CHECKS`` Django checks a persistent connection (``SELECT 1``,
a round trip) before its first use in every request, so one that PostgreSQL
or a proxy dropped is replaced instead of failing the request. A connection
that ran a query successfully less than ``RECENT_SECONDS`` ago has just shown
it works: for it the check is skipped. Under load (the token API's many short
requests) no request pays the round trip; after a pause, the first request
is checked as before.
"""

import time

from django.db import connections

RECENT_SECONDS = 1.0


def _stamp(execute, sql, params, many, context):
    result = execute(sql, params, many, context)
    context["connection"].tokenkeeper_used_at = time.monotonic()  # only once the query succeeded
    return result


def watch_connection(sender, connection, **kwargs) -> None:
    """``connection_created``: time every successful query on this connection."""
    if _stamp not in connection.execute_wrappers:
        connection.execute_wrappers.append(_stamp)


def skip_recent_health_checks(**kwargs) -> None:
    """``request_started``, after Django's own receiver has asked for a health check."""
    now = time.monotonic()
    for connection in connections.all(initialized_only=True):
        if (
            connection.connection is not None
            and now - getattr(connection, "tokenkeeper_used_at", -1e9) < RECENT_SECONDS
        ):
            connection.health_check_done = True
