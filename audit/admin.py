from django.contrib import admin

from common.admin import ReadOnlyAdmin

from .models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "workspace", "action", "actor_label", "target_label", "ip_address"]
    list_filter = ["action"]
    search_fields = ["action", "actor_label", "target_label", "target_id", "workspace__slug"]
    date_hierarchy = "created_at"
    list_select_related = ["workspace"]
