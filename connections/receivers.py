"""Connections' part in changes other apps make (connected in ConnectionsConfig.ready)."""

from django.dispatch import receiver

from oauthclients.signals import oauth_client_deleting

from .services import connections_revoke_for_client


@receiver(oauth_client_deleting, dispatch_uid="connections-revoke-for-deleted-client")
def revoke_connections_of_deleted_client(sender, *, workspace, client, actor, **kwargs) -> None:
    connections_revoke_for_client(
        workspace=workspace, oauth_client=client, actor=actor, reason=f"OAuth client “{client.name}” was deleted."
    )
