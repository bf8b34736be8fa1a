"""Writes for connections: create, rename, disconnect, delete, and people's
refresh actions (refresh now, mark for re-authorization), and support's
(pause and resume refreshing, send the re-authorization e-mail again).

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
from .notifications import notify_needs_reauth, recipients
from .signals import connection_disconnecting
from .tokens import next_refresh_due, refresh_window_opens_at


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
    if connection.refresh_paused_at is not None:
        raise ConflictError(f"{refresh.PAUSED_MESSAGE} Resume it first.", code="refresh_paused")
    if reason := refresh.not_refreshable(connection):
        raise ConflictError(f"{reason} Reconnect it instead.", code="not_refreshable")
    opens = refresh_window_opens_at(connection)
    if opens and timezone.now() < opens:
        return _refresh_when_window_opens(workspace=workspace, connection=connection, actor=actor)
    result = refresh.refresh_forced(connection=connection)
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


# --- Support: pause and resume refreshing, remind people to re-authorize ----------------------


def _locked(workspace, connection: Connection) -> Connection:
    return (
        Connection.objects.select_for_update(of=("self",))
        .select_related("oauth_client", "workspace")
        .get(pk=connection.pk, workspace=workspace)
    )


@transaction.atomic
def connection_pause(*, workspace, connection: Connection, actor: Actor) -> Connection:
    """Stop refreshing: no refresh is due, so the sweeper never claims it, and
    the token API serves the current token until it expires, then says why not.

    Under the row lock, so a refresh in progress finishes first; a claim the
    sweeper already made is dropped by its worker (``refresh.not_refreshable``).
    """
    connection = _locked(workspace, connection)
    if connection.refresh_paused_at is not None:
        raise ConflictError("Refreshing this connection is already paused.", code="refresh_paused")
    connection.refresh_paused_at = timezone.now()
    connection.refresh_due_at = None
    connection.save(update_fields=["refresh_paused_at", "refresh_due_at", "updated_at"])
    connection_event(connection, EventKind.REFRESH_PAUSED, f"Refreshing paused by {actor.label}.")
    audit_record(workspace=workspace, actor=actor, action="connection.refresh_paused", target=connection)
    return connection


@transaction.atomic
def connection_resume(*, workspace, connection: Connection, actor: Actor) -> Connection:
    """Refresh again: the next refresh is due when the provider's policy says
    (``tokens.next_refresh_due``); at once if the token expired meanwhile."""
    connection = _locked(workspace, connection)
    if connection.refresh_paused_at is None:
        raise ConflictError("Refreshing this connection is not paused.", code="not_paused")
    connection.refresh_paused_at = None
    if connection.status in refresh.REFRESHABLE:
        connection.refresh_due_at = next_refresh_due(connection)
    connection.save(update_fields=["refresh_paused_at", "refresh_due_at", "updated_at"])
    due = connection.refresh_due_at
    detail = f"Refreshing resumed by {actor.label}." + (f" Next refresh due at {due:%H:%M:%S} UTC." if due else "")
    connection_event(connection, EventKind.REFRESH_RESUMED, detail)
    audit_record(
        workspace=workspace,
        actor=actor,
        action="connection.refresh_resumed",
        target=connection,
        data={"refresh_due_at": due.isoformat() if due else None},
    )
    return connection


@transaction.atomic
def connection_resend_reauth_email(*, workspace, connection: Connection, actor: Actor) -> list[str]:
    """Send the "needs re-authorization" e-mail again (owner and workspace admins); returns the recipients."""
    connection = Connection.objects.select_related("oauth_client", "workspace", "owner").get(
        pk=connection.pk, workspace=workspace
    )
    if connection.status != Status.NEEDS_REAUTH:
        raise ConflictError(
            f"The connection is {connection.get_status_display().lower()}: the re-authorization e-mail is only "
            "for a connection that needs re-authorization.",
            code="not_needs_reauth",
        )
    people = recipients(connection)
    notify_needs_reauth(connection)
    connection_event(connection, EventKind.REAUTH_EMAIL_SENT, f"Re-authorization e-mail sent again by {actor.label}.")
    audit_record(
        workspace=workspace,
        actor=actor,
        action="connection.reauth_email_resent",
        target=connection,
        data={"recipients": len(people)},
    )
    return people
