from django.db.models import Count, Q, QuerySet

from .models import OAuthClient


def oauth_clients_list(*, workspace) -> QuerySet[OAuthClient]:
    """Clients with ``connections_count`` (connections not revoked)."""
    return OAuthClient.objects.filter(workspace=workspace).annotate(
        connections_count=Count("connections", filter=~Q(connections__status="revoked"))
    )


def oauth_client_get(*, workspace, client_id) -> OAuthClient | None:
    return oauth_clients_list(workspace=workspace).filter(id=client_id).first()


def oauth_clients_by_name(*, workspace) -> QuerySet[OAuthClient]:
    """The workspace's clients, for a choice list."""
    return OAuthClient.objects.filter(workspace=workspace).order_by("name")


def oauth_client_connections_in_use(*, client: OAuthClient) -> int:
    """How many connections use the client (revoked ones do not count)."""
    return client.connections.exclude(status="revoked").count()
