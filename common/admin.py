"""Django admin building blocks. Every registered admin is read-only (this
module) or audits every change (``audit.staff.AuditedAdmin``);
``tests/security/test_admin_audit.py`` checks that rule over ``admin.site``.
"""

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Staff can look, not change: the product's own screens make changes."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
