import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.db.models import Case, Count, IntegerField, Q, QuerySet, Subquery, Value, When
from django.utils import timezone

from accounts.models import User
from common.compiled import CompiledQuery
from oauthclients.models import OAuthClient
from workspaces.models import Workspace

from . import rowcache
from .models import Connection, ConnectionEvent, ConnectionSearchText, EventKind, Status

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


# What the token API reads (connections.access): a narrow row, no joins, so the
# hottest request compiles and decrypts little. The rest loads on first access.
TOKEN_FIELDS = (
    "id",
    "workspace_id",
    "owner_id",
    "status",
    "access_token",
    "token_type",
    "access_token_expires_at",
    "refresh_due_at",
    "refresh_paused_at",
    "last_error",
)


def _token_rows(*, workspace, membership=None) -> QuerySet[Connection]:
    visible = connections_visible(workspace=workspace, membership=membership).select_related(None)
    return visible.only(*TOKEN_FIELDS).order_by()


# The read of every token request with an API key or an admin's session
# (they see the whole workspace), compiled once per thread (common/compiled.py).
_token_query = CompiledQuery(
    lambda workspace_id, connection_id: _token_rows(workspace=workspace_id).filter(id=connection_id)[:1],
    "workspace_id",
    "connection_id",
)


def connection_for_token(*, workspace, membership=None, connection_id, recent: bool = False) -> Connection | None:
    """The connection whose access token the caller asks for, if visible to them (connections_visible).

    ``recent``: this process's copy read in the last second will do (``connections.rowcache``; the
    API-key fast path). The row is then shared with other requests: read-only.
    """
    try:
        connection_id = uuid.UUID(str(connection_id))
    except ValueError:
        return None  # the URL's pattern lets through dashes in the wrong places
    if membership is None or membership.is_admin:
        if recent:
            load = partial(_token_query.first, workspace_id=workspace.pk, connection_id=connection_id)
            return rowcache.read("token", workspace.pk, connection_id, load)
        return _token_query.first(workspace_id=workspace.pk, connection_id=connection_id)
    return _token_rows(workspace=workspace, membership=membership).filter(id=connection_id).first()


# What the provider proxy reads (connections.proxy): the token's row plus what the call needs, and
# the OAuth client's routing fields, in one compiled read (a join) instead of four lazy loads.
PROXY_FIELDS = (*TOKEN_FIELDS, "oauth_client_id", "refresh_paused_at", "access_token_lifetime", "account_division")
PROXY_CLIENT_FIELDS = (
    "id",
    "workspace_id",
    "provider",
    "name",
    "client_id",
    "token_url",
    "api_base_url",
    "access_token_expires_in",
)
_proxy_query = CompiledQuery(
    lambda workspace_id, connection_id: (
        connections_visible(workspace=workspace_id)
        .select_related(None)
        .select_related("oauth_client")
        .only(*PROXY_FIELDS, *(f"oauth_client__{name}" for name in PROXY_CLIENT_FIELDS))
        .order_by()
        .filter(id=connection_id)[:1]
    ),
    "workspace_id",
    "connection_id",
)


def connection_for_proxy(*, workspace, membership=None, connection_id, recent: bool = False) -> Connection | None:
    """The connection a proxied call uses, with its OAuth client, if visible to the caller (as for a token).

    ``recent``: as for ``connection_for_token``.
    """
    try:
        connection_id = uuid.UUID(str(connection_id))
    except ValueError:
        return None
    if membership is not None and not membership.is_admin:
        return connections_visible(workspace=workspace, membership=membership).filter(id=connection_id).first()
    if recent:
        load = partial(_proxy_query.first, workspace_id=workspace.pk, connection_id=connection_id)
        return rowcache.read("proxy", workspace.pk, connection_id, load)
    return _proxy_query.first(workspace_id=workspace.pk, connection_id=connection_id)


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


# --- Support (the Django admin) --------------------------------------------------------------


def connections_search(queryset: QuerySet[Connection], term: str) -> QuerySet[Connection]:
    """Connections matching what a customer tells support, across workspaces; every
    way of matching reads an index.

    - A number is an Exact Online division: an exact match on
      ``account_division`` (index connection_account_division).
    - A UUID is a connection, a workspace or an OAuth client id (primary and
      foreign keys).
    - An e-mail address is also the owner's (users' unique e-mail index).
    - Any text is part of the connection's name, account name or account
      e-mail (the trigram index of ``ConnectionSearchText``), or of a
      workspace's name or slug or an OAuth client's name or client id (small
      tables, read first, then joined through indexed foreign keys).
    """
    term = " ".join(term.split())
    if not term:
        return queryset
    if term.isdigit():
        return queryset.filter(account_division=int(term))
    try:
        uid = uuid.UUID(term)
    except ValueError:
        pass
    else:
        return queryset.filter(Q(id=uid) | Q(workspace_id=uid) | Q(oauth_client_id=uid))
    # One IN over a UNION, each part through its own index: an OR of several INs
    # would make PostgreSQL read every connection to test each row.
    ids = ConnectionSearchText.objects.filter(text__contains=term.lower()).values_list("connection_id", flat=True)
    by_id = Connection.objects.order_by()  # no ORDER BY inside the UNION
    workspaces = Workspace.objects.filter(Q(name__icontains=term) | Q(slug__icontains=term)).values("id")
    clients = OAuthClient.objects.filter(Q(name__icontains=term) | Q(client_id__icontains=term)).values("id")
    parts = [
        by_id.filter(workspace_id__in=workspaces).values_list("id", flat=True),
        by_id.filter(oauth_client_id__in=clients).values_list("id", flat=True),
    ]
    if "@" in term:
        owners = User.objects.filter(email=term.lower()).values("id")
        parts.append(by_id.filter(owner_id__in=owners).values_list("id", flat=True))
    return queryset.filter(id__in=ids.union(*parts))


# Events that are (part of) a problem, that end one, and that are neither.
PROBLEM_KINDS = {
    EventKind.REFRESH_FAILED,
    EventKind.REFRESH_DEFERRED,
    EventKind.NEEDS_REAUTH,
    EventKind.AUTHORIZATION_FAILED,
    EventKind.REVOKED,
    EventKind.REFRESH_PAUSED,
}
# What the provider answered: a failed refresh, a refused refresh token, a failed authorization.
PROVIDER_ANSWER_KINDS = {EventKind.REFRESH_FAILED, EventKind.NEEDS_REAUTH, EventKind.AUTHORIZATION_FAILED}
NEUTRAL_KINDS = {EventKind.REAUTH_EMAIL_SENT}


@dataclass
class ProviderAnswer:
    status: int | None
    text: str
    at: datetime


@dataclass
class Diagnosis:
    """A connection as support needs to read it: what is wrong, since when, what the provider said, what to do."""

    tone: str  # "ok", "warning", "error" or "muted"
    headline: str
    since: datetime | None = None
    since_at_least: bool = False  # the problem began before the oldest event loaded
    provider_answer: ProviderAnswer | None = None
    advice: str = ""


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC" if moment else "an unknown time"


def _problem_started(events: list[ConnectionEvent], more_events: bool) -> tuple[datetime | None, bool]:
    """When the run of problem events that leads ``events`` (newest first) began, and
    whether it may have begun earlier (it reaches back past the events loaded)."""
    started = None
    for event in events:
        if event.kind in NEUTRAL_KINDS:
            continue
        if event.kind not in PROBLEM_KINDS:
            return started, False
        started = event.created_at
    return started, started is not None and more_events


def _provider_answer(events: list[ConnectionEvent]) -> ProviderAnswer | None:
    for event in events:
        if event.kind in PROVIDER_ANSWER_KINDS:
            return ProviderAnswer(status=event.data.get("status"), text=event.detail, at=event.created_at)
    return None


def _token_state(connection: Connection, now: datetime) -> str:
    expires = connection.access_token_expires_at
    if expires is None:
        return "There is no access token."
    if expires > now:
        return f"The current access token is valid until {_when(expires)}."
    return f"The access token expired at {_when(expires)}: integrations get no token until a refresh works."


def connection_diagnosis(
    *, connection: Connection, events: list[ConnectionEvent], now: datetime, more_events: bool = False
) -> Diagnosis:
    """Read a connection for support; ``events``: its latest events, newest first
    (``more_events``: it has older ones than these)."""
    since, at_least = _problem_started(events, more_events)
    answer = _provider_answer(events)
    provider = connection.oauth_client.get_provider_display()
    tokens = _token_state(connection, now)
    if connection.refresh_paused_at is not None:
        return Diagnosis(
            "warning",
            f"Refreshing is paused by Tokenkeeper support (since {_when(connection.refresh_paused_at)}). {tokens}",
            since=connection.refresh_paused_at,
            provider_answer=answer,
            advice="Resume refreshing when the reason for the pause is gone; the next refresh is then planned at once.",
        )
    if connection.status == Status.PENDING:
        failed = f" The last attempt failed: {connection.last_error}" if connection.last_error else ""
        return Diagnosis(
            "muted",
            f"Not connected yet: nobody has completed the authorization at {provider}.{failed}",
            provider_answer=answer,
            advice="The customer opens the connection and clicks Connect; nothing to do here.",
        )
    if connection.status == Status.REVOKED:
        return Diagnosis(
            "muted",
            f"Disconnected (since {_when(since)}): its tokens are erased.",
            since=since,
            provider_answer=answer,
            advice="Only a reconnect by someone in the workspace brings it back.",
        )
    if connection.status == Status.NEEDS_REAUTH:
        return Diagnosis(
            "error",
            f"Needs re-authorization: {provider} refused the refresh token ({_when(connection.last_error_at)}). "
            "Tokenkeeper cannot repair this by itself.",
            since=since,
            since_at_least=at_least,
            provider_answer=answer,
            advice="Someone in the workspace must click Reconnect on the connection's page; its owner and the "
            "workspace's admins were e-mailed. Resend the e-mail if they cannot find it.",
        )
    if connection.status == Status.REFRESH_FAILING:
        return Diagnosis(
            "warning",
            f"Refreshing is failing: {connection.refresh_failures} failed attempt(s) in a row. Tokenkeeper keeps "
            f"retrying; the next attempt is due at {_when(connection.refresh_due_at)}. {tokens}",
            since=since,
            since_at_least=at_least,
            provider_answer=answer,
            advice=f"Usually {provider} is down or slow: wait, or Refresh now to try at once (within the "
            "provider's window). If the same error keeps coming back, check the provider's status; pause "
            "refreshing if the attempts must stop.",
        )
    due = connection.refresh_due_at
    return Diagnosis(
        "ok",
        f"Working. {tokens} The next refresh is due at {_when(due)}." if due else f"Working. {tokens}",
        provider_answer=answer,
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
