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


def connections_with_account(*, provider: str, client_id: str, account_id: str) -> QuerySet[Connection]:
    """Connections of any workspace authorized as ``account_id`` through an app with ``client_id``.

    Across workspaces on purpose: a provider with one grant per (app, account)
    ends the older grant wherever it is (``connections.grants``).
    """
    return Connection.objects.filter(
        oauth_client__provider=provider, oauth_client__client_id=client_id, account_id=account_id
    )
