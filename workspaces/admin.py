"""Support screens for workspaces, members, invitations and API keys.

Support staff view everything and may resend an invitation; superusers may
also add, change and delete workspaces and memberships (audited, and the
workspace's admins see it as "Tokenkeeper support"). Invitation tokens and
API-key hashes are never shown.
"""

from django import forms
from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html_join

from audit.services import Actor
from audit.staff import AuditedAdmin
from common.admin import (
    InputFilter,
    ObjectAction,
    ObjectActionsMixin,
    ReadOnlyAdmin,
    WorkspaceFilter,
    change_link,
    changelist_url,
)
from common.errors import ServiceError, clean_name

from . import services
from .models import ApiKey, Invitation, Membership, Role, Workspace


class UserEmailFilter(InputFilter):
    title = "user (e-mail)"
    parameter_name = "user"
    lookup = "user__email__iexact"


# --- Workspaces ---------------------------------------------------------------------------------


class WorkspaceForm(forms.ModelForm):
    """The product's rules for a name and a slug, for superusers' changes."""

    class Meta:
        model = Workspace
        fields = ["name", "slug"]

    def clean_name(self) -> str:
        try:
            return clean_name(self.cleaned_data.get("name"), empty_message="Give the workspace a name.")
        except ServiceError as error:
            raise forms.ValidationError(error.message) from None

    def clean_slug(self) -> str:
        slug = (self.cleaned_data.get("slug") or "").strip().lower()
        if slug in services.RESERVED_SLUGS:
            raise forms.ValidationError(f"The slug “{slug}” is reserved; choose another.")
        return slug


class MembershipInline(admin.TabularInline):
    model = Membership
    fields = ["user", "role", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")


# Each screen of a workspace's rows, as (label, app, model, related name for the count).
WORKSPACE_SCREENS = [
    ("Members", "workspaces", "membership", "memberships"),
    ("Invitations", "workspaces", "invitation", "invitations"),
    ("API keys", "workspaces", "apikey", "api_keys"),
    ("OAuth clients", "oauthclients", "oauthclient", "oauth_clients"),
    ("Connections", "connections", "connection", "connections"),
    ("Audit log", "audit", "auditevent", "audit_events"),
]


@admin.register(Workspace)
class WorkspaceAdmin(AuditedAdmin):
    audit_name = "workspace"
    form = WorkspaceForm
    list_display = ["name", "slug", "created_by", "created_at", "links"]
    list_select_related = ["created_by"]
    search_fields = ["name", "slug", "memberships__user__email"]
    date_hierarchy = "created_at"
    fields = ["name", "slug", "created_by", "created_at", "screens"]
    readonly_fields = ["created_by", "created_at", "screens"]
    inlines = [MembershipInline]

    def audit_workspace(self, obj):
        return obj

    def audit_deleted_workspace(self, obj):
        return None  # the workspace's own trail goes with it; this event stays

    def audit_deleted_data(self, obj) -> dict:
        return {"name": obj.name, "slug": obj.slug}

    @admin.display(description="Screens")
    def links(self, obj) -> str:
        return format_html_join(
            " · ",
            '<a href="{}">{}</a>',
            ((changelist_url(app, model, workspace=obj.slug), label) for label, app, model, _ in WORKSPACE_SCREENS),
        )

    @admin.display(description="Its rows")
    def screens(self, obj) -> str:
        """Every screen of this workspace's rows, with how many there are (one indexed count each)."""
        if obj.pk is None:
            return "–"
        return format_html_join(
            " · ",
            '<a href="{}">{} ({})</a>',
            (
                (changelist_url(app, model, workspace=obj.slug), label, getattr(obj, related).count())
                for label, app, model, related in WORKSPACE_SCREENS
            ),
        )

    def get_deleted_objects(self, objs, request):
        """What deleting a workspace takes with it, counted (not listed: it may be millions of rows).

        Everything in it goes (the rows belong to it), so no permission on
        each kind of row is asked for beyond deleting the workspace.
        """
        summary = {}
        for workspace in objs:
            for label, _, _, related in WORKSPACE_SCREENS:
                summary[label] = summary.get(label, 0) + getattr(workspace, related).count()
        return [str(obj) for obj in objs], summary, set(), []


# --- Members -------------------------------------------------------------------------------------


def _admins(workspace_id) -> int:
    return Membership.objects.filter(workspace_id=workspace_id, role=Role.ADMIN).count()


class MembershipForm(forms.ModelForm):
    """A superuser's change keeps the rule every workspace has: at least one admin."""

    class Meta:
        model = Membership
        fields = ["workspace", "user", "role"]

    def clean(self):
        data = super().clean()
        demoting = self.instance.pk and self.instance.role == Role.ADMIN and data.get("role") != Role.ADMIN
        if demoting and _admins(self.instance.workspace_id) <= 1:
            raise forms.ValidationError("The last admin cannot be demoted; make someone else admin first.")
        return data


@admin.register(Membership)
class MembershipAdmin(AuditedAdmin):
    audit_name = "membership"
    form = MembershipForm
    list_display = ["user", "workspace_link", "role", "created_at"]
    list_filter = [WorkspaceFilter, UserEmailFilter, "role"]
    search_fields = ["user__email", "workspace__name", "workspace__slug"]
    list_select_related = ["user", "workspace"]
    raw_id_fields = ["workspace", "user"]  # a select of every user would be the whole table

    def get_readonly_fields(self, request, obj=None):
        return ["workspace", "user", "created_at"] if obj is not None else ["created_at"]

    def get_actions(self, request):
        # One at a time: each deletion is checked against the last-admin rule.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.role == Role.ADMIN and _admins(obj.workspace_id) <= 1:
            return False  # the last admin: make someone else admin first
        return super().has_delete_permission(request, obj)

    def audit_workspace(self, obj):
        return obj.workspace

    def audit_deleted_data(self, obj) -> dict:
        return {"email": obj.user.email, "role": obj.role}

    @admin.display(description="Workspace", ordering="workspace__name")
    def workspace_link(self, obj) -> str:
        return change_link(obj.workspace)


# --- Invitations ------------------------------------------------------------------------------


class InvitationStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("pending", "Pending"), ("accepted", "Accepted"), ("revoked", "Revoked"), ("expired", "Expired")]

    def queryset(self, request, queryset):
        now = timezone.now()
        open_ = {"accepted_at__isnull": True, "revoked_at__isnull": True}
        return {
            "pending": lambda: queryset.filter(**open_, expires_at__gt=now),
            "accepted": lambda: queryset.filter(accepted_at__isnull=False),
            "revoked": lambda: queryset.filter(accepted_at__isnull=True, revoked_at__isnull=False),
            "expired": lambda: queryset.filter(**open_, expires_at__lte=now),
        }.get(self.value(), lambda: queryset)()


@admin.register(Invitation)
class InvitationAdmin(ObjectActionsMixin, ReadOnlyAdmin):
    secret_fields = ("token_hash",)
    list_display = ["email", "workspace_link", "role", "status", "invited_by", "created_at", "expires_at"]
    list_filter = [WorkspaceFilter, InvitationStatusFilter, "role"]
    search_fields = ["email", "workspace__name", "workspace__slug"]
    list_select_related = ["workspace", "invited_by"]
    date_hierarchy = "created_at"
    actions = ["resend_selected"]

    def has_support_permission(self, request) -> bool:
        return request.user.has_perm("workspaces.support_invitation")

    def object_actions(self) -> list[ObjectAction]:
        return [
            ObjectAction(
                name="resend",
                label="Resend invitation",
                help="E-mails a new link (the old one stops working), valid for another full period.",
                run=self._resend,
                permission="support",
                applies=lambda invitation: invitation.status in ("pending", "expired"),
            )
        ]

    def _resend(self, request, invitation) -> str:
        invitation, _ = services.invitation_resend(
            workspace=invitation.workspace, invitation=invitation, actor=Actor.staff_from_request(request)
        )
        return f"Invitation sent again to {invitation.email}; the new link expires {invitation.expires_at:%Y-%m-%d %H:%M} UTC."

    @admin.action(permissions=["support"], description="Resend the selected invitations")
    def resend_selected(self, request, queryset):
        for invitation in queryset.select_related("workspace"):
            try:
                self.message_user(request, self._resend(request, invitation))
            except ServiceError as error:
                self.message_user(request, f"{invitation.email}: {error.message}", level="WARNING")

    @admin.display(description="Workspace", ordering="workspace__name")
    def workspace_link(self, obj) -> str:
        return change_link(obj.workspace)


# --- API keys ------------------------------------------------------------------------------------


class KeyStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        if self.value() in ("active", "revoked"):
            return queryset.filter(revoked_at__isnull=self.value() == "active")
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdmin):
    secret_fields = ("key_hash",)
    list_display = [
        "name",
        "workspace_link",
        "masked_prefix",
        "scopes",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = [WorkspaceFilter, KeyStateFilter]
    search_fields = ["name", "prefix", "workspace__name", "workspace__slug"]
    list_select_related = ["workspace", "created_by"]

    @admin.display(description="Key")
    def masked_prefix(self, obj) -> str:
        return f"tk_{obj.prefix}_…"

    @admin.display(description="Workspace", ordering="workspace__name")
    def workspace_link(self, obj) -> str:
        return change_link(obj.workspace)
