from django.contrib import admin, messages

from audit.services import Actor
from common.admin import ReadOnlyAdmin
from common.errors import ServiceError

from . import services
from .models import Connection, ConnectionEvent


class ConnectionEventInline(admin.TabularInline):
    model = ConnectionEvent
    fields = ["created_at", "kind", "detail"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-created_at"]
    max_num = 0


@admin.register(Connection)
class ConnectionAdmin(ReadOnlyAdmin):
    """Support staff: find a connection, see why it broke, act on it. Tokens are never shown."""

    list_display = [
        "name",
        "workspace",
        "oauth_client",
        "account_name",
        "status",
        "access_token_expires_at",
        "refresh_due_at",
        "last_refreshed_at",
        "refresh_failures",
        "token_calls_today",
        "last_error",
    ]
    list_filter = ["status", "oauth_client__provider"]
    search_fields = [
        "id",
        "name",
        "account_name",
        "account_email",
        "account_id",
        "workspace__name",
        "workspace__slug",
        "oauth_client__name",
        "oauth_client__client_id",
        "owner__email",
    ]
    exclude = ["access_token", "refresh_token"]
    list_select_related = ["workspace", "oauth_client"]
    inlines = [ConnectionEventInline]
    actions = ["refresh_now", "mark_needs_reauth", "disable"]

    def has_support_permission(self, request) -> bool:
        """Fields stay read-only; staff with the change permission may run the actions."""
        return request.user.is_staff and request.user.has_perm("connections.change_connection")

    def _each(self, request, queryset, label, act):
        actor = Actor.from_request(request)
        done = 0
        for connection in queryset.select_related("workspace"):
            try:
                act(connection, actor)
                done += 1
            except ServiceError as error:
                self.message_user(request, f"{connection}: {error.message}", messages.WARNING)
        self.message_user(request, f"{label}: {done} connection(s).", messages.SUCCESS)

    @admin.action(permissions=["support"], description="Refresh now (respects the provider's window)")
    def refresh_now(self, request, queryset):
        self._each(
            request,
            queryset,
            "Refresh requested",
            lambda c, actor: services.connection_refresh_now(workspace=c.workspace, connection=c, actor=actor),
        )

    @admin.action(permissions=["support"], description="Mark for re-authorization")
    def mark_needs_reauth(self, request, queryset):
        self._each(
            request,
            queryset,
            "Marked for re-authorization",
            lambda c, actor: services.connection_mark_needs_reauth(workspace=c.workspace, connection=c, actor=actor),
        )

    @admin.action(permissions=["support"], description="Disable (disconnect: erase tokens, status revoked)")
    def disable(self, request, queryset):
        self._each(
            request,
            queryset,
            "Disabled",
            lambda c, actor: services.connection_disconnect(
                workspace=c.workspace, connection=c, actor=actor, reason=f"Disabled by staff ({actor.label})."
            ),
        )
