"""Staff changes in the Django admin, audited: the admin base class for every model staff may change."""

from django.contrib import admin
from django.db import transaction

from common.admin import SupportAdminMixin

from .services import Actor, audit_record


def changed_fields(form) -> list[str]:
    """The names of the fields a form changed; password fields all show as ``password``."""
    names = sorted(form.changed_data) if form is not None else []
    plain = [name for name in names if not name.startswith("password")]
    return plain + (["password"] if len(plain) < len(names) else [])


class AuditedAdmin(SupportAdminMixin, admin.ModelAdmin):
    """Every add, change and delete through this admin writes an audit event, in the same transaction.

    Events are ``staff.<audit_name>_created|changed|deleted`` with the staff
    user as actor (a staff ``Actor``: the workspace sees "Tokenkeeper
    support") and no workspace unless ``audit_workspace`` names one. Admin
    actions that change data must call ``audit`` themselves. Who may add,
    change or delete is Django's model permissions: superusers all, the
    ``support`` group none (it views).
    """

    audit_name = ""

    def audit_workspace(self, obj):
        return None

    def audit_deleted_workspace(self, obj):
        """Where a deletion is recorded: the object's workspace, unless deleting it deletes that trail too."""
        return self.audit_workspace(obj)

    def audit_deleted_data(self, obj) -> dict:
        return {"label": str(obj)}

    def audit(self, request, verb: str, obj, data: dict | None = None) -> None:
        audit_record(
            workspace=self.audit_deleted_workspace(obj) if verb == "deleted" else self.audit_workspace(obj),
            actor=Actor.staff_from_request(request),
            action=f"staff.{self.audit_name or obj._meta.model_name}_{verb}",
            target=obj,
            data=data,
        )

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        self.audit(request, "changed" if change else "created", obj, {"fields": changed_fields(form)})

    def delete_model(self, request, obj):
        self.audit(request, "deleted", obj, self.audit_deleted_data(obj))
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():  # the bulk delete action is not atomic by itself
            for obj in queryset:
                self.audit(request, "deleted", obj, self.audit_deleted_data(obj))
            super().delete_queryset(request, queryset)
