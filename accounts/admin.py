"""Staff admins for people and their sign-in data: every change is audited, no secret is shown.

Support staff (the ``support`` group) view; superusers change. A password,
a second factor's secret and an e-mail confirmation key are never shown, not
even a part of them: the pages say only whether one is set.
"""

from allauth.account.admin import EmailAddressAdmin as AllauthEmailAddressAdmin
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.contrib.auth.models import Group
from django.db import transaction
from django.urls import reverse
from django.utils.html import format_html

from audit.staff import AuditedAdmin
from common.admin import InputFilter, changelist_link

from .models import User

# Replaced below by audited versions.
for model in (Group, EmailAddress, Authenticator):
    if admin.site.is_registered(model):
        admin.site.unregister(model)


class UserEmailFilter(InputFilter):
    title = "user (e-mail)"
    parameter_name = "user"
    lookup = "user__email__iexact"


@admin.register(User)
class UserAdmin(AuditedAdmin, BaseUserAdmin):
    audit_name = "user"
    ordering = ["email"]
    list_display = ["email", "name", "is_staff", "is_superuser", "is_active", "date_joined", "last_login"]
    search_fields = ["email", "name"]
    list_filter = ["is_staff", "is_superuser", "is_active", "groups"]
    fieldsets = [
        (None, {"fields": ["email", "password_status"]}),
        ("Profile", {"fields": ["name"]}),
        ("Workspaces", {"fields": ["workspaces"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]
    readonly_fields = ["password_status", "workspaces", "last_login", "date_joined"]

    def has_delete_permission(self, request, obj=None) -> bool:
        # Someone who still belongs to a workspace is removed from it first (the
        # last-admin rule lives there); deleting them would empty it quietly.
        if obj is not None and obj.memberships.exists():
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description="Password")
    def password_status(self, obj) -> str:
        usable = bool(obj.password) and not obj.password.startswith(UNUSABLE_PASSWORD_PREFIX)
        text = "set (never shown)" if usable else "not set"
        if obj.pk is None:
            return text
        url = reverse("admin:auth_user_password_change", args=[obj.pk])
        return format_html('{} — <a href="{}">set a new password</a>', text, url)

    @admin.display(description="Workspaces")
    def workspaces(self, obj) -> str:
        if obj.pk is None:
            return "–"
        return format_html(
            "{} · {}",
            changelist_link("memberships", "workspaces", "membership", user=obj.email),
            changelist_link("connections owned", "connections", "connection", owner=obj.email),
        )

    def audit_deleted_data(self, obj) -> dict:
        return {"email": obj.email}

    def user_change_password(self, request, id, form_url=""):
        # Django's password view saves without save_model and outside a transaction.
        with transaction.atomic():
            return super().user_change_password(request, id, form_url)

    def log_change(self, request, obj, message):
        entry = super().log_change(request, obj, message)
        if request.resolver_match and request.resolver_match.url_name.endswith("_password_change"):
            self.audit(request, "changed", obj, {"fields": ["password"]})
        return entry


@admin.register(EmailAddress)
class EmailAddressAdmin(AuditedAdmin, AllauthEmailAddressAdmin):
    audit_name = "email_address"
    list_select_related = ["user"]
    list_filter = [UserEmailFilter, "primary", "verified"]

    def get_search_fields(self, request):
        return ["email", "user__email"]

    def audit_deleted_data(self, obj) -> dict:
        return {"email": obj.email, "user": obj.user.email}

    @admin.action(permissions=["change"], description=AllauthEmailAddressAdmin.make_verified.short_description)
    @transaction.atomic
    def make_verified(self, request, queryset) -> None:
        unverified = list(queryset.filter(verified=False))
        super().make_verified(request, queryset)
        for address in EmailAddress.objects.filter(pk__in=[a.pk for a in unverified], verified=True):
            self.audit(request, "changed", address, {"fields": ["verified"], "action": "make_verified"})


@admin.register(Group)
class GroupAdmin(AuditedAdmin, DjangoGroupAdmin):
    audit_name = "group"


@admin.register(Authenticator)
class AuthenticatorAdmin(AuditedAdmin):
    """Staff may remove a person's second factor (a lost phone), never see or edit it."""

    audit_name = "authenticator"
    list_display = ["user", "type", "created_at", "last_used_at"]
    list_filter = [UserEmailFilter, "type"]
    search_fields = ["user__email"]
    list_select_related = ["user"]
    fields = ["user", "type", "created_at", "last_used_at"]  # never "data": it holds the (encrypted) secrets
    readonly_fields = fields

    def audit_deleted_data(self, obj) -> dict:
        return {"user": obj.user.email, "type": obj.type}

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
