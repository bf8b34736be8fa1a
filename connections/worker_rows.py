"""The refresh worker's statements on ``connections_connection``, written out.

The hot path runs them hundreds of times a second: building them with the
ORM per refresh (query compiling, model building) cost a third of a
refresh's CPU (docs/benchmarks.md). They are built once per process; the
values go through the same converters the ORM applies (decryption, the
backend's types), worked out once per database backend, into
``Connection.from_db``, so what comes back is an ordinary model instance.

- ``lock_one``: ``SELECT … WHERE id = %s FOR UPDATE`` (a group of one, and
  a group's answer stored on its own);
- ``lock_group``: ``SELECT … WHERE id IN (…) ORDER BY id FOR UPDATE`` (a
  group, ``connections.refresh.refresh_group``);
- ``save_columns``: ``UPDATE … SET <the changed columns> WHERE id = %s``.
"""

from collections.abc import Callable

from django.db import connection as db_connection
from django.utils import timezone

from oauthclients.models import OAuthClient

from .models import Connection

# What a worker never reads: left out of its locked SELECT (a deferred field
# still loads on first access, and assigning one saves it). The token API and
# admins get the whole row: they read the access token they caused.
WORKER_DEFERRED = (
    "access_token",
    "account_id",
    "account_name",
    "account_email",
    "account_details",
    "account_division",
    "connected_at",
    "created_at",
)

_FIELDS = {f.name: f for f in Connection._meta.concrete_fields}
_WORKER_FIELDS = [f for f in Connection._meta.concrete_fields if f.name not in WORKER_DEFERRED]
_WORKER_SELECT = f"SELECT {', '.join(f.column for f in _WORKER_FIELDS)} FROM connections_connection"  # noqa: S608
_converters: dict[str, list] = {}

ClientFor = Callable[[object], OAuthClient]


def lock_one(connection_id, client_for: ClientFor) -> Connection | None:
    """One row, locked: the columns a worker reads, its OAuth client from ``client_for(client_id)``."""
    with db_connection.cursor() as cursor:
        cursor.execute(_WORKER_SELECT + " WHERE id = %s" + _lock(), [_id_param(connection_id)])
        row = cursor.fetchone()
    return None if row is None else _connection(row, client_for)


def lock_group(connection_ids: list, client_for: ClientFor) -> dict[str, Connection]:
    """The rows of a group, locked in one statement: {str(id): Connection}; a missing id is left out.

    In the order of their ids, so two transactions that lock overlapping
    groups queue instead of deadlocking.
    """
    where = f" WHERE id IN ({', '.join(['%s'] * len(connection_ids))}) ORDER BY id"
    with db_connection.cursor() as cursor:
        cursor.execute(_WORKER_SELECT + where + _lock(), [_id_param(i) for i in connection_ids])
        rows = cursor.fetchall()
    connections = (_connection(row, client_for) for row in rows)
    return {str(connection.pk): connection for connection in connections}


def save_columns(connection: Connection, names: list[str]) -> None:
    """``UPDATE … SET <these columns> WHERE id = …``: what ``save(update_fields=…)`` does,
    without building the query anew for each of hundreds of refreshes a second."""
    connection.updated_at = timezone.now()
    fields = [_FIELDS[name] for name in (*names, "updated_at")]
    assignments = ", ".join(f"{db_connection.ops.quote_name(f.column)} = %s" for f in fields)
    params = [f.get_db_prep_save(getattr(connection, f.attname), db_connection) for f in fields]
    with db_connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE connections_connection SET {assignments} WHERE id = %s",  # noqa: S608 (model's column names)
            [*params, _id_param(connection.pk)],
        )


def _lock() -> str:
    return " FOR UPDATE" if db_connection.features.has_select_for_update else ""


def _id_param(connection_id):
    return _FIELDS["id"].get_db_prep_value(connection_id, db_connection)


def _connection(row: tuple, client_for: ClientFor) -> Connection:
    converters = _converters.get(db_connection.vendor) or _converters.setdefault(
        db_connection.vendor,
        [
            [*db_connection.ops.get_db_converters(f.cached_col), *f.get_db_converters(db_connection)]
            for f in _WORKER_FIELDS
        ],
    )
    values = []
    for value, field_converters, column in zip(row, converters, _WORKER_FIELDS, strict=True):
        for convert in field_converters:
            value = convert(value, column.cached_col, db_connection)
        values.append(value)
    connection = Connection.from_db(db_connection.alias, [f.attname for f in _WORKER_FIELDS], values)
    connection.oauth_client = client_for(connection.oauth_client_id)
    return connection
