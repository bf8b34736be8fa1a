from django.contrib import admin

from common.admin import ReadOnlyAdmin

from .models import ApiKey, Invitation, Membership, Workspace


class MembershipInline(admin.TabularInline):
    model = Membership
    fields = ["user", "role", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Workspace)
class WorkspaceAdmin(ReadOnlyAdmin):
    list_display = ["name", "slug", "created_by", "created_at"]
    search_fields = ["name", "slug", "memberships__user__email"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdmin):
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "workspace__name", "workspace__slug"]
    list_select_related = ["user", "workspace"]


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdmin):
    list_display = ["email", "workspace", "role", "status", "created_at", "expires_at"]
    search_fields = ["email", "workspace__name", "workspace__slug"]
    exclude = ["token_hash"]
    list_select_related = ["workspace"]


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdmin):
    list_display = ["name", "workspace", "masked_prefix", "scopes", "created_at", "last_used_at", "revoked_at"]
    search_fields = ["name", "prefix", "workspace__name", "workspace__slug"]
    exclude = ["key_hash"]
    list_select_related = ["workspace"]

    @admin.display(description="Key")
    def masked_prefix(self, obj) -> str:
        return f"tk_{obj.prefix}_…"
