from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from audit.services import Actor, audit_record

from .models import User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
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

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        fields = sorted(form.changed_data) if form is not None else []
        audit_record(
            workspace=None,
            actor=Actor.from_request(request),
            action="staff.user_changed" if change else "staff.user_created",
            target=obj,
            data={
                "fields": [f for f in fields if not f.startswith("password")]
                + (["password"] if any(f.startswith("password") for f in fields) else [])
            },
        )

    def delete_model(self, request, obj):
        audit_record(
            workspace=None,
            actor=Actor.from_request(request),
            action="staff.user_deleted",
            target=obj,
            data={"email": obj.email},
        )
        super().delete_model(request, obj)
