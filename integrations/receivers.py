"""Integrations' part in a connection's life (connected in IntegrationsConfig.ready).

Both run inside the connection's transaction: the stream event and the
subscription changes commit with it; the work that talks to the outside
(publishing webhooks, calling Exact) happens after the commit.
"""

from django.dispatch import receiver

from connections.models import Connection, ConnectionEvent, EventKind
from connections.signals import connection_disconnecting, connection_event_recorded

from . import exact_subscriptions, stream
from .models import EventType

STREAMED = {
    EventKind.AUTHORIZED: EventType.CONNECTION_AUTHORIZED,
    EventKind.REFRESH_FAILED: EventType.CONNECTION_REFRESH_FAILED,
    EventKind.RECOVERED: EventType.CONNECTION_RECOVERED,
    EventKind.NEEDS_REAUTH: EventType.CONNECTION_NEEDS_REAUTH,
    EventKind.RECONNECTED: EventType.CONNECTION_RECONNECTED,
    EventKind.REVOKED: EventType.CONNECTION_REVOKED,
}
CONNECTED_KINDS = (EventKind.AUTHORIZED, EventKind.RECONNECTED)


def connection_event_data(connection: Connection, event: ConnectionEvent) -> dict:
    """What a stream event says about a connection: never a token (the refresh engine's
    row may have fields deferred, so only those it always loads)."""
    return {
        "connection": {
            "id": str(connection.id),
            "name": connection.name,
            "status": connection.status,
            "oauth_client": str(connection.oauth_client_id),
        },
        "detail": event.detail,
        **event.data,
    }


@receiver(connection_event_recorded, dispatch_uid="integrations-connection-event")
def connection_event_to_stream(sender, *, connection: Connection, event: ConnectionEvent, **kwargs) -> None:
    if event.kind in STREAMED:
        stream.event_record(
            workspace_id=connection.workspace_id,
            type=STREAMED[event.kind],
            connection=connection,
            data=connection_event_data(connection, event),
        )
    if event.kind in CONNECTED_KINDS:
        exact_subscriptions.subscriptions_resume(connection=connection)


@receiver(connection_disconnecting, dispatch_uid="integrations-connection-disconnecting")
def release_exact_subscriptions(sender, *, connection: Connection, deleting: bool = False, **kwargs) -> None:
    exact_subscriptions.subscriptions_release(connection=connection, deleting=deleting)
