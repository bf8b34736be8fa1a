from django.contrib import admin
from django.db import models

from common.admin import ReadOnlyAdmin

from .models import OAuthClient


@admin.register(OAuthClient)
class OAuthClientAdmin(ReadOnlyAdmin):
    list_display = ["name", "workspace", "provider", "client_id", "created_at"]
    list_filter = ["provider", "workspace"]
    search_fields = ["name", "client_id", "workspace__name", "workspace__slug"]
    exclude = ["client_secret", "webhook_secret"]
    readonly_fields = ["secrets_status"]
    list_select_related = ["workspace"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}  # Django 6.0's default, without the warning

    @admin.display(description="Secrets")
    def secrets_status(self, obj) -> str:
        client = "set" if obj.client_secret else "not set"
        webhook = "set" if obj.webhook_secret else "not set"
        return f"client secret {client}; webhook secret {webhook} (never shown)"
