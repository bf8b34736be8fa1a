"""Staff admins for people and their sign-in data: every change is audited, no secret is shown."""

from allauth.account.admin import EmailAddressAdmin as AllauthEmailAddressAdmin
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group
from django.db import transaction

from audit.staff import AuditedAdmin

from .models import User

# Replaced below by audited versions.
for model in (Group, EmailAddress, Authenticator):
    if admin.site.is_registered(model):
        admin.site.unregister(model)


@admin.register(User)
class UserAdmin(AuditedAdmin, BaseUserAdmin):
    audit_name = "user"
    ordering = ["email"]
    list_display = ["email", "name", "is_staff", "is_active", "date_joined", "last_login"]
    search_fields = ["email", "name"]
    list_filter = ["is_staff", "is_superuser", "is_active"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Profile", {"fields": ["name"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]
    readonly_fields = ["last_login", "date_joined"]

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

    def audit_deleted_data(self, obj) -> dict:
        return {"email": obj.email, "user": obj.user.email}

    @transaction.atomic
    def make_verified(self, request, queryset) -> None:
        unverified = list(queryset.filter(verified=False))
        super().make_verified(request, queryset)
        for address in EmailAddress.objects.filter(pk__in=[a.pk for a in unverified], verified=True):
            self.audit(request, "changed", address, {"fields": ["verified"], "action": "make_verified"})

    make_verified.short_description = AllauthEmailAddressAdmin.make_verified.short_description


@admin.register(Group)
class GroupAdmin(AuditedAdmin, DjangoGroupAdmin):
    audit_name = "group"


@admin.register(Authenticator)
class AuthenticatorAdmin(AuditedAdmin):
    """Staff may remove a person's second factor (a lost phone), never see or edit it."""

    audit_name = "authenticator"
    list_display = ["user", "type", "created_at", "last_used_at"]
    list_filter = ["type"]
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
