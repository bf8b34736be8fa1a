"""Writes for connections: create, rename, disconnect, delete, and people's
refresh actions (refresh now, mark for re-authorization).

The authorization-code flow lives in ``connections.flow``; the refresh engine
in ``connections.refresh``; the event history in ``connections.events``.
"""

from django.db import transaction
from django.utils import timezone

from audit.services import Actor, audit_record
from common.errors import ConflictError, ServiceError, clean_name

from . import refresh
from .events import connection_event
from .models import Connection, EventKind, Status
from .signals import connection_disconnecting
from .tokens import refresh_window_opens_at


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
    connection_disconnecting.send(sender=Connection, connection=connection, deleting=False)
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
    connection_disconnecting.send(sender=Connection, connection=connection, deleting=True)
    audit_record(
        workspace=workspace,
        actor=actor,
        action="connection.deleted",
        target=connection,
        data={"name": connection.name, "status": connection.status},
    )
    connection.delete()


def connection_refresh_now(*, workspace, connection: Connection, actor: Actor) -> refresh.RefreshResult:
    """A person's "refresh now": immediately, or as soon as the provider's window opens."""
    connection = Connection.objects.select_related("oauth_client").get(pk=connection.pk, workspace=workspace)
    if reason := refresh.not_refreshable(connection):
        raise ConflictError(f"{reason} Reconnect it instead.", code="not_refreshable")
    opens = refresh_window_opens_at(connection)
    if opens and timezone.now() < opens:
        return _refresh_when_window_opens(workspace=workspace, connection=connection, actor=actor)
    result = refresh.refresh_forced(connection_id=connection.pk)
    if result.outcome == refresh.Outcome.DEFERRED:
        raise ConflictError(f"Not refreshed: {result.message}", code="provider_budget")
    audit_record(
        workspace=workspace,
        actor=actor,
        action="connection.refresh_forced",
        target=connection,
        data={"result": str(result.outcome)},
    )
    return result


def _refresh_when_window_opens(*, workspace, connection: Connection, actor: Actor) -> refresh.RefreshResult:
    policy = connection.oauth_client.provider_spec.refresh_policy
    at = policy.due_at(connection.access_token_expires_at, connection.access_token_lifetime or 0)
    Connection.objects.filter(pk=connection.pk, refresh_due_at__gt=at).update(refresh_due_at=at)
    message = (
        f"{connection.oauth_client.get_provider_display()} accepts a refresh only in the last "
        f"{policy.window_seconds} s before expiry; it will happen at {at:%H:%M:%S} UTC."
    )
    audit_record(
        workspace=workspace,
        actor=actor,
        action="connection.refresh_requested",
        target=connection,
        data={"refresh_at": at.isoformat()},
    )
    return refresh.RefreshResult(refresh.Outcome.SCHEDULED, connection, message, retry_at=at)


@transaction.atomic
def connection_mark_needs_reauth(*, workspace, connection: Connection, actor: Actor, reason: str = "") -> Connection:
    connection = (
        Connection.objects.select_for_update()
        .select_related("workspace", "oauth_client")
        .get(pk=connection.pk, workspace=workspace)
    )
    refresh.mark_needs_reauth(connection, reason or f"Marked for re-authorization by {actor.label}.")
    audit_record(workspace=workspace, actor=actor, action="connection.marked_needs_reauth", target=connection)
    return connection
