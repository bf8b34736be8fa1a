from django.db.models import QuerySet

from .models import Connection, ConnectionEvent


def connections_visible(*, workspace, membership=None) -> QuerySet[Connection]:
    """Admins and API keys see every connection of the workspace; members see their own."""
    queryset = Connection.objects.filter(workspace=workspace).select_related("oauth_client", "owner")
    if membership is not None and not membership.is_admin:
        queryset = queryset.filter(owner=membership.user)
    return queryset


def connection_get(*, workspace, membership, connection_id) -> Connection | None:
    return connections_visible(workspace=workspace, membership=membership).filter(id=connection_id).first()


def connection_events(*, connection: Connection, limit: int = 100) -> QuerySet[ConnectionEvent]:
    return connection.events.order_by("-created_at")[:limit]
