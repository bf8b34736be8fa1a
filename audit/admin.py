"""The audit trail for staff: every workspace's events, searchable, never editable.

A staff action shows as "Tokenkeeper support"; which staff member it was is
shown (and searchable) for superusers only.
"""

from django.contrib import admin

from common.admin import InputFilter, ReadOnlyAdmin, WorkspaceFilter, change_link

from .models import AuditEvent

ACTION_FAMILIES = [
    ("connection.", "Connections"),
    ("oauth_client.", "OAuth clients"),
    ("member.", "Members"),
    ("invitation.", "Invitations"),
    ("api_key.", "API keys"),
    ("workspace.", "Workspace"),
    ("staff.", "Staff changes in the admin"),
]


class ActionFamilyFilter(admin.SimpleListFilter):
    """By kind of action, from a fixed list: listing the distinct actions would read the whole table."""

    title = "action"
    parameter_name = "family"

    def lookups(self, request, model_admin):
        return ACTION_FAMILIES

    def queryset(self, request, queryset):
        return queryset.filter(action__startswith=self.value()) if self.value() else queryset


class TargetFilter(InputFilter):
    """``?target=<id>``: one object's audit trail (index audit_target_time)."""

    title = "object id"
    parameter_name = "target"
    lookup = "target_id"


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_filter = [WorkspaceFilter, TargetFilter, ActionFamilyFilter, "by_staff"]
    date_hierarchy = "created_at"
    list_select_related = ["workspace", "actor_api_key"]
    ordering = ["-created_at"]
    public_fields = [
        "created_at",
        "workspace_link",
        "action",
        "actor_label",
        "by_staff",
        "actor_api_key",
        "target_type",
        "target_id",
        "target_label",
        "data",
    ]

    def get_list_display(self, request):
        if request.user.is_superuser:
            return ["created_at", "workspace_link", "action", "actor_shown", "target_label", "ip_address"]
        return ["created_at", "workspace_link", "action", "actor_label", "target_label", "public_ip"]

    def get_list_select_related(self, request):
        return [*self.list_select_related, *(["actor"] if request.user.is_superuser else [])]

    def get_fields(self, request, obj=None):
        if request.user.is_superuser:
            return [*self.public_fields, "ip_address", "staff_member"]
        return [*self.public_fields, "public_ip"]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    def get_search_fields(self, request):
        fields = ["action", "actor_label", "target_label", "target_id", "workspace__slug"]
        return [*fields, "actor__email"] if request.user.is_superuser else fields

    @admin.display(description="Workspace", ordering="workspace__name")
    def workspace_link(self, obj) -> str:
        return change_link(obj.workspace)

    @admin.display(description="IP address")
    def public_ip(self, obj) -> str:
        """Not for a staff action: the address would point at the person."""
        return obj.public_ip_address or "–"

    @admin.display(description="Actor")
    def actor_shown(self, obj) -> str:
        """Superusers only: the staff member behind "Tokenkeeper support"."""
        if obj.by_staff:
            return f"{obj.actor_label} ({obj.actor.email if obj.actor else 'a deleted user'})"
        return obj.actor_label

    @admin.display(description="Staff member")
    def staff_member(self, obj) -> str:
        if not obj.by_staff:
            return "–"
        return change_link(obj.actor) if obj.actor else "a deleted user"
