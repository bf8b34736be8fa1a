"""Connections' part in changes other apps make (connected in ConnectionsConfig.ready)."""

from django.dispatch import receiver

from oauthclients.signals import oauth_client_deleting

from . import rowcache
from .services import connections_revoke_for_client
from .signals import connection_disconnecting, connection_event_recorded


@receiver(oauth_client_deleting, dispatch_uid="connections-revoke-for-deleted-client")
def revoke_connections_of_deleted_client(sender, *, workspace, client, actor, **kwargs) -> None:
    connections_revoke_for_client(
        workspace=workspace, oauth_client=client, actor=actor, reason=f"OAuth client “{client.name}” was deleted."
    )


@receiver(connection_event_recorded, dispatch_uid="connections-rowcache-event")
@receiver(connection_disconnecting, dispatch_uid="connections-rowcache-disconnect")
def announce_connection_change(sender, *, connection, **kwargs) -> None:
    """Every lifecycle change but the routine refresh: each web process drops its cached rows on commit."""
    rowcache.changed(connection.pk)
