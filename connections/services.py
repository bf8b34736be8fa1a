"""Writes for connections: create, rename, disconnect, delete, and the event history.

The authorization-code flow lives in ``connections.flow``; token refresh in
``connections.refresh``.
"""

import time
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from audit.services import Actor, audit_record
from common.errors import ServiceError, clean_name

from .models import Connection, ConnectionEvent, EventKind, Status


def connection_event(connection: Connection, kind: str, detail: str = "", **data) -> ConnectionEvent:
    return ConnectionEvent.objects.create(connection=connection, kind=kind, detail=detail[:2000], data=data)


def connection_events_purge(*, older_than_days: float, batch_size: int = 5000, max_seconds: float = 300) -> int:
    """Delete routine ``refreshed`` events older than ``older_than_days``, oldest first.

    At 100,000 Exact Online connections the engine records ~14 million of
    them a day; every other kind (failures, needs_reauth, reconnects …) is
    kept. Deletes in batches of ``batch_size`` (short transactions, no long
    lock) and stops after ``max_seconds``; the next run continues. Returns how
    many were deleted.
    """
    cutoff = timezone.now() - timedelta(days=older_than_days)
    old = ConnectionEvent.objects.filter(kind=EventKind.REFRESHED, created_at__lt=cutoff).order_by("created_at")
    deleted, stop_at = 0, time.monotonic() + max_seconds
    while time.monotonic() < stop_at:
        ids = list(old.values_list("id", flat=True)[:batch_size])
        if not ids:
            break
        deleted += ConnectionEvent.objects.filter(id__in=ids).delete()[0]
    return deleted


def _clean_name(name: str) -> str:
    return clean_name(name, empty_message="Give the connection a name, e.g. “Acme BV administration”.")


@transaction.atomic
def connection_create(*, workspace, oauth_client, name: str, owner, actor: Actor) -> Connection:
    if oauth_client is None or oauth_client.workspace_id != workspace.id:
        raise ServiceError("Choose an OAuth client of this workspace.", field="oauth_client")
    connection = Connection.objects.create(
        workspace=workspace, oauth_client=oauth_client, name=_clean_name(name), owner=owner
    )
    connection_event(connection, EventKind.CREATED, f"Created by {actor.label}.")
    audit_record(
        workspace=workspace,
        actor=actor,
        action="connection.created",
        target=connection,
        data={"name": connection.name, "oauth_client": oauth_client.name},
    )
    return connection


@transaction.atomic
def connection_rename(*, workspace, connection: Connection, name: str, actor: Actor) -> Connection:
    name = _clean_name(name)
    old = connection.name
    if name != old:
        Connection.objects.filter(pk=connection.pk, workspace=workspace).update(name=name, updated_at=timezone.now())
        connection.name = name
        audit_record(
            workspace=workspace,
            actor=actor,
            action="connection.renamed",
            target=connection,
            data={"from": old, "to": name},
        )
    return connection


def _erase_tokens(connection: Connection) -> None:
    connection.access_token = ""
    connection.refresh_token = ""
    connection.access_token_expires_at = None
    connection.refresh_token_expires_at = None
    connection.refresh_due_at = None
    connection.lease_token = None
    connection.lease_expires_at = None
    connection.interrupted_at = None


@transaction.atomic
def connection_disconnect(*, workspace, connection: Connection, actor: Actor, reason: str = "") -> Connection:
    """Erase the tokens and mark the connection revoked. Reconnecting brings it back."""
    connection = Connection.objects.select_for_update().get(pk=connection.pk, workspace=workspace)
    if connection.status == Status.REVOKED:
        return connection
    _erase_tokens(connection)
    connection.status = Status.REVOKED
    connection.save()
    connection_event(connection, EventKind.REVOKED, reason or f"Disconnected by {actor.label}.")
    audit_record(
        workspace=workspace,
        actor=actor,
        action="connection.revoked",
        target=connection,
        data={"reason": reason} if reason else {},
    )
    return connection


@transaction.atomic
def connections_revoke_for_client(*, workspace, oauth_client, actor: Actor, reason: str) -> int:
    """Disconnect every connection that uses ``oauth_client`` and is not revoked yet; return how many."""
    live = list(
        Connection.objects.filter(workspace=workspace, oauth_client=oauth_client).exclude(status=Status.REVOKED)
    )
    for connection in live:
        connection_disconnect(workspace=workspace, connection=connection, actor=actor, reason=reason)
    return len(live)


@transaction.atomic
def connection_delete(*, workspace, connection: Connection, actor: Actor) -> None:
    connection = Connection.objects.select_for_update().get(pk=connection.pk, workspace=workspace)
    audit_record(
        workspace=workspace,
        actor=actor,
        action="connection.deleted",
        target=connection,
        data={"name": connection.name, "status": connection.status},
    )
    connection.delete()
