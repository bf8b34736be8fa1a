"""Support screens for connections and their events.

A connection's page answers in one screen what is wrong, since when, what
the provider said last, what happened (its recent events) and what to do
(the support actions as buttons). Tokens are never shown. Actions need the
``connections.support_connection`` permission (the ``support`` group and
superusers) and write audit events the workspace sees as "Tokenkeeper
support".
"""

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.text import Truncator

from audit.services import Actor
from common.admin import (
    InputFilter,
    ObjectAction,
    ObjectActionsMixin,
    ReadOnlyAdmin,
    UUIDInputFilter,
    WorkspaceFilter,
    change_link,
    changelist_url,
)
from common.errors import ServiceError

from . import services
from .models import Connection, ConnectionEvent, Status
from .refresh import Outcome
from .selectors import connection_diagnosis, connections_search

RECENT_EVENTS = 30


class StatusFilter(admin.SimpleListFilter):
    """The status, and "paused" (a flag beside it)."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [*Status.choices, ("paused", "Refreshing paused")]

    def queryset(self, request, queryset):
        if self.value() == "paused":
            return queryset.filter(refresh_paused_at__isnull=False)
        if self.value() in Status.values:
            return queryset.filter(status=self.value())
        return queryset


class ClientFilter(UUIDInputFilter):
    title = "OAuth client (id)"
    parameter_name = "client"
    lookup = "oauth_client_id"


class OwnerFilter(InputFilter):
    title = "owner (e-mail)"
    parameter_name = "owner"
    lookup = "owner__email__iexact"


def _short(text: str, length: int = 80) -> str:
    return Truncator(text).chars(length) if text else ""


@admin.register(Connection)
class ConnectionAdmin(ObjectActionsMixin, ReadOnlyAdmin):
    secret_fields = ("access_token", "refresh_token")
    list_display = [
        "name",
        "workspace_link",
        "provider",
        "account",
        "status_shown",
        "next_refresh",
        "last_refresh",
        "failures_in_a_row",
        "last_error_short",
        "token_calls_today",
    ]
    list_display_links = ["name"]
    list_filter = [StatusFilter, "oauth_client__provider", WorkspaceFilter, ClientFilter, OwnerFilter]
    list_select_related = ["workspace", "oauth_client"]
    # Workspace first: the (workspace, status) index gives the rows in that
    # order, so a page of 1,000,000 connections sorts only within workspaces.
    ordering = ["workspace_id", "name"]
    search_fields = ["name"]  # shows the search box; connections_search decides what matches
    search_help_text = (
        "A number finds an Exact Online division; an id a connection, workspace or client; any other text "
        "a workspace (name or slug), OAuth client (name or client id), owner's e-mail, or the connection's "
        "name, account name or account e-mail."
    )
    support_panel_template = "admin/connections/connection/support_panel.html"
    actions = ["refresh_now_selected", "pause_selected", "resume_selected"]
    fieldsets = [
        (
            "Connection",
            {"fields": ["name", "workspace_link", "client_link", "provider", "owner_link", "status", "created_at"]},
        ),
        (
            "Connected account",
            {"fields": ["account_name", "account_email", "account_id", "account_division", "account_details"]},
        ),
        (
            "Tokens",
            {
                "fields": [
                    "secrets_status",
                    "token_type",
                    "granted_scopes",
                    "access_token_expires_at",
                    "access_token_lifetime",
                    "refresh_token_expires_at",
                    "connected_at",
                ]
            },
        ),
        (
            "Refreshing",
            {
                "fields": [
                    "refresh_paused_at",
                    "refresh_due_at",
                    "last_refreshed_at",
                    "refresh_failures",
                    "last_error",
                    "last_error_at",
                    "token_calls_today",
                    "lease_expires_at",
                    "interrupted_at",
                ]
            },
        ),
    ]
    readonly_fields = ["workspace_link", "client_link", "provider", "owner_link", "token_calls_today"]

    # --- Search ------------------------------------------------------------------------------------

    def get_search_results(self, request, queryset, search_term):
        return connections_search(queryset, search_term), False

    def get_ordering(self, request):
        # A search finds few rows: sorting them by name is cheap, and it keeps PostgreSQL
        # from walking workspaces in order to join them (docs/support.md, "Measured").
        return ["name"] if request.GET.get("q", "").strip() else self.ordering

    # --- Columns and fields ------------------------------------------------------------------------

    @admin.display(description="Workspace", ordering="workspace__name")
    def workspace_link(self, obj) -> str:
        return change_link(obj.workspace)

    @admin.display(description="OAuth client")
    def client_link(self, obj) -> str:
        return change_link(obj.oauth_client)

    @admin.display(description="Owner")
    def owner_link(self, obj) -> str:
        return change_link(obj.owner) if obj.owner_id else "–"

    @admin.display(description="Provider", ordering="oauth_client__provider")
    def provider(self, obj) -> str:
        return obj.oauth_client.get_provider_display()

    @admin.display(description="Account (division)", ordering="account_name")
    def account(self, obj) -> str:
        division = f" ({obj.account_division})" if obj.account_division is not None else ""
        return f"{obj.account_name or obj.account_email or '–'}{division}"

    @admin.display(description="Status", ordering="status")
    def status_shown(self, obj) -> str:
        paused = " (paused)" if obj.refresh_paused_at else ""
        return f"{obj.get_status_display()}{paused}"

    @admin.display(description="Next refresh due", ordering="refresh_due_at")
    def next_refresh(self, obj):
        return obj.refresh_due_at

    @admin.display(description="Last refresh", ordering="last_refreshed_at")
    def last_refresh(self, obj):
        return obj.last_refreshed_at

    @admin.display(description="Failures in a row", ordering="refresh_failures")
    def failures_in_a_row(self, obj) -> int:
        return obj.refresh_failures

    @admin.display(description="Last error")
    def last_error_short(self, obj) -> str:
        return _short(obj.last_error)

    @admin.display(description="Token calls today")
    def token_calls_today(self, obj) -> int:
        return obj.token_calls_today

    # --- The support page ---------------------------------------------------------------------------

    def support_panel_context(self, request, obj) -> dict:
        loaded = list(obj.events.order_by("-created_at")[: RECENT_EVENTS + 1])
        events, more = loaded[:RECENT_EVENTS], len(loaded) > RECENT_EVENTS
        return {
            "diagnosis": connection_diagnosis(connection=obj, events=events, now=timezone.now(), more_events=more),
            "recent_events": events,
            "events_url": changelist_url("connections", "connectionevent", connection=str(obj.id)),
            "audit_url": changelist_url("audit", "auditevent", target=str(obj.id)),
        }

    # --- Actions -----------------------------------------------------------------------------------

    def has_support_permission(self, request) -> bool:
        return request.user.has_perm("connections.support_connection")

    def object_actions(self) -> list[ObjectAction]:
        return [
            ObjectAction(
                "refresh_now",
                "Refresh now",
                "Asks the provider for a new token now; before the provider's window opens (Exact Online: the "
                "last 30 s of a token), it is planned for when it does and the page says when.",
                self._refresh_now,
                "support",
                _refreshable,
            ),
            ObjectAction(
                "pause",
                "Pause refreshing",
                "Stops all refreshes (the sweeper and the token API); a still-valid token is served until it expires.",
                self._pause,
                "support",
                lambda c: c.refresh_paused_at is None and c.status not in (Status.PENDING, Status.REVOKED),
            ),
            ObjectAction(
                "resume",
                "Resume refreshing",
                "Plans the next refresh from the token's expiry (at once if it has expired).",
                self._resume,
                "support",
                lambda c: c.refresh_paused_at is not None,
            ),
            ObjectAction(
                "resend_reauth_email",
                "Resend the re-authorization e-mail",
                "E-mails the owner and the workspace's admins again how to reconnect.",
                self._resend_reauth_email,
                "support",
                lambda c: c.status == Status.NEEDS_REAUTH,
            ),
            ObjectAction(
                "mark_needs_reauth",
                "Mark for re-authorization",
                "Stops refreshing until someone reconnects it, and e-mails them: for a grant the customer "
                "revoked at the provider.",
                self._mark_needs_reauth,
                "support",
                _refreshable,
            ),
        ]

    def _refresh_now(self, request, connection) -> str:
        result = services.connection_refresh_now(
            workspace=connection.workspace, connection=connection, actor=Actor.staff_from_request(request)
        )
        if result.outcome == Outcome.REFRESHED:
            expires = result.connection.access_token_expires_at
            return f"Refreshed: the new access token is valid until {expires:%Y-%m-%d %H:%M:%S} UTC."
        if result.outcome == Outcome.SCHEDULED:
            return f"Scheduled: {result.message}"
        if result.outcome == Outcome.FAILED:
            raise ServiceError(f"The refresh failed: {result.message} Tokenkeeper retries on its own.")
        if result.outcome == Outcome.NEEDS_REAUTH:
            raise ServiceError(f"The provider refused the refresh token: {result.message}")
        raise ServiceError(f"Not refreshed: {result.message}")

    def _pause(self, request, connection) -> str:
        services.connection_pause(
            workspace=connection.workspace, connection=connection, actor=Actor.staff_from_request(request)
        )
        return f"Refreshing of “{connection}” is paused."

    def _resume(self, request, connection) -> str:
        connection = services.connection_resume(
            workspace=connection.workspace, connection=connection, actor=Actor.staff_from_request(request)
        )
        due = connection.refresh_due_at
        return f"Refreshing resumed; next refresh due at {due:%H:%M:%S} UTC." if due else "Refreshing resumed."

    def _resend_reauth_email(self, request, connection) -> str:
        people = services.connection_resend_reauth_email(
            workspace=connection.workspace, connection=connection, actor=Actor.staff_from_request(request)
        )
        return f"Re-authorization e-mail sent again to {len(people)} people."

    def _mark_needs_reauth(self, request, connection) -> str:
        services.connection_mark_needs_reauth(
            workspace=connection.workspace, connection=connection, actor=Actor.staff_from_request(request)
        )
        return f"“{connection}” is marked for re-authorization; its owner and the workspace's admins are e-mailed."

    def _each(self, request, queryset, act) -> None:
        for connection in queryset.select_related("workspace", "oauth_client"):
            try:
                self.message_user(request, f"{connection}: {act(request, connection)}", messages.SUCCESS)
            except ServiceError as error:
                self.message_user(request, f"{connection}: {error.message}", messages.WARNING)

    @admin.action(permissions=["support"], description="Refresh now (respects the provider's window)")
    def refresh_now_selected(self, request, queryset):
        self._each(request, queryset, self._refresh_now)

    @admin.action(permissions=["support"], description="Pause refreshing")
    def pause_selected(self, request, queryset):
        self._each(request, queryset, self._pause)

    @admin.action(permissions=["support"], description="Resume refreshing")
    def resume_selected(self, request, queryset):
        self._each(request, queryset, self._resume)


def _refreshable(connection: Connection) -> bool:
    return connection.status in (Status.ACTIVE, Status.REFRESH_FAILING) and connection.refresh_paused_at is None


class ConnectionIdFilter(UUIDInputFilter):
    title = "connection (id)"
    parameter_name = "connection"
    lookup = "connection_id"


@admin.register(ConnectionEvent)
class ConnectionEventAdmin(ReadOnlyAdmin):
    """Every connection's history; reached from a connection's page (``?connection=<id>``).

    No search box: matching text in tens of millions of events reads them all.
    """

    list_display = ["created_at", "connection_link", "kind", "provider_status", "detail_short"]
    list_filter = [ConnectionIdFilter, "kind", ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["connection"]
    ordering = ["-created_at"]
    fields = ["created_at", "connection_link", "kind", "detail", "data"]
    readonly_fields = fields

    @admin.display(description="Connection")
    def connection_link(self, obj) -> str:
        return change_link(obj.connection)

    @admin.display(description="Provider's HTTP status")
    def provider_status(self, obj) -> str:
        return str(obj.data.get("status") or "–")

    @admin.display(description="Detail")
    def detail_short(self, obj) -> str:
        return _short(obj.detail, 120)
