from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Case, Count, IntegerField, Q, QuerySet, Subquery, Value, When
from django.utils import timezone

from .models import Connection, ConnectionEvent, EventKind, Status

# What the Overview puts first: the provider refused the refresh token, or refreshing keeps failing.
ATTENTION = (Status.NEEDS_REAUTH, Status.REFRESH_FAILING)
# The Overview's refresh figures read at most this many of the latest events (bounded at any size).
REFRESH_STATS_CAP = 5000
# A connection's timeline draws at most this many events of its last day.
TIMELINE_EVENTS_CAP = 400


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


def connection_events_since(*, connection: Connection, since: datetime) -> list[ConnectionEvent]:
    """The connection's events after ``since``, oldest first (at most ``TIMELINE_EVENTS_CAP``, the latest)."""
    latest = connection.events.filter(created_at__gte=since).order_by("-created_at")[:TIMELINE_EVENTS_CAP]
    return list(reversed(latest))


def connection_last_event(*, connection: Connection, kind: str) -> ConnectionEvent | None:
    return connection.events.filter(kind=kind).order_by("-created_at").first()


def connections_with_account(*, provider: str, client_id: str, account_id: str) -> QuerySet[Connection]:
    """Connections of any workspace authorized as ``account_id`` through an app with ``client_id``.

    Across workspaces on purpose: a provider with one grant per (app, account)
    ends the older grant wherever it is (``connections.grants``).
    """
    return Connection.objects.filter(
        oauth_client__provider=provider, oauth_client__client_id=client_id, account_id=account_id
    )


# --- The workspace Overview ------------------------------------------------------------------------


def status_counts(*, workspace, membership=None) -> dict[str, int]:
    """How many visible connections have each status (every status present, 0 when none)."""
    rows = (
        connections_visible(workspace=workspace, membership=membership)
        .order_by()
        .values("status")
        .annotate(count=Count("id"))
    )
    counts = dict.fromkeys(Status.values, 0)
    counts.update({row["status"]: row["count"] for row in rows})
    return counts


def workspace_has_connected(*, workspace) -> bool:
    """Whether any connection of the workspace was ever authorized."""
    return Connection.objects.filter(workspace=workspace, connected_at__isnull=False).exists()


def connections_needing_attention(*, workspace, membership=None, limit: int = 10) -> list[Connection]:
    """Needs re-authorization first, then refresh failing; the latest error first within each."""
    urgency = Case(When(status=Status.NEEDS_REAUTH, then=Value(0)), default=Value(1), output_field=IntegerField())
    return list(
        connections_visible(workspace=workspace, membership=membership)
        .filter(status__in=ATTENTION)
        .order_by(urgency, "-last_error_at", "name")[:limit]
    )


def refresh_tokens_expiring(*, workspace, membership=None, limit: int = 5) -> list[Connection]:
    """Live connections whose refresh token expires, soonest first."""
    return list(
        connections_visible(workspace=workspace, membership=membership)
        .filter(status__in=(Status.ACTIVE, Status.REFRESH_FAILING), refresh_token_expires_at__isnull=False)
        .order_by("refresh_token_expires_at")[:limit]
    )


@dataclass(frozen=True)
class RefreshStats:
    """Refreshes since ``since``: how many, how many inside the provider's window, how many failed."""

    since: datetime
    refreshed: int
    in_window: int
    measured: int  # refreshes that recorded whether they were inside the window (older events did not)
    failed: int
    capped: bool  # the figures cover only the latest REFRESH_STATS_CAP events

    @property
    def in_window_percent(self) -> int | None:
        return round(100 * self.in_window / self.measured) if self.measured else None


def refresh_stats(*, workspace, membership=None, hours: int = 24) -> RefreshStats:
    since = timezone.now() - timedelta(hours=hours)
    visible = connections_visible(workspace=workspace, membership=membership).order_by().values("id")
    latest = (
        ConnectionEvent.objects.filter(
            connection__in=visible,
            created_at__gte=since,
            kind__in=(EventKind.REFRESHED, EventKind.REFRESH_FAILED),
        )
        .order_by("-created_at")
        .values("id")[:REFRESH_STATS_CAP]
    )
    refreshed = Q(kind=EventKind.REFRESHED)
    figures = ConnectionEvent.objects.filter(id__in=Subquery(latest)).aggregate(
        total=Count("id"),
        refreshed=Count("id", filter=refreshed),
        in_window=Count("id", filter=refreshed & Q(data__in_window=True)),
        measured=Count("id", filter=refreshed & Q(data__has_key="in_window")),
        failed=Count("id", filter=Q(kind=EventKind.REFRESH_FAILED)),
    )
    return RefreshStats(
        since=since,
        refreshed=figures["refreshed"],
        in_window=figures["in_window"],
        measured=figures["measured"],
        failed=figures["failed"],
        capped=figures["total"] >= REFRESH_STATS_CAP,
    )
