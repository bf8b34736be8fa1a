from django.contrib import admin

from common.admin import ReadOnlyAdmin

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
    list_display = ["name", "workspace", "oauth_client", "account_name", "status", "access_token_expires_at",
                    "refresh_due_at", "last_refreshed_at", "refresh_failures"]
    list_filter = ["status", "oauth_client__provider"]
    search_fields = ["id", "name", "account_name", "account_email", "account_id", "workspace__name", "workspace__slug",
                     "oauth_client__name", "owner__email"]
    exclude = ["access_token", "refresh_token"]
    list_select_related = ["workspace", "oauth_client"]
    inlines = [ConnectionEventInline]
