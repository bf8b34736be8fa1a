"""Read-only screens for support staff. Secrets (an endpoint's signing secret, a
subscription's removal token) are never among the fields shown."""

from django.contrib import admin

from common.admin import ReadOnlyAdmin, WorkspaceFilter

from .models import ExactSubscription, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WorkspaceEvent


@admin.register(WorkspaceEvent)
class WorkspaceEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "workspace", "cursor", "type", "connection"]
    list_filter = [WorkspaceFilter, "type"]
    search_fields = ["id", "workspace__slug", "workspace__name", "connection__name"]
    fields = ["id", "workspace", "cursor", "type", "connection", "data", "dedupe_key", "created_at", "published_at"]
    list_select_related = ["workspace", "connection"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyAdmin):
    list_display = ["url", "workspace", "enabled", "failing_since", "created_at"]
    list_filter = [WorkspaceFilter, "enabled"]
    list_select_related = ["workspace"]
    search_fields = ["id", "url", "workspace__slug", "workspace__name"]
    secret_fields = ("secret",)
    fields = [
        "id",
        "workspace",
        "url",
        "description",
        "event_types",
        "enabled",
        "disabled_reason",
        "disabled_at",
        "failing_since",
        "created_by",
        "created_at",
        "updated_at",
    ]


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ["number", "started_at", "duration_ms", "status_code", "succeeded", "error", "response_excerpt"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "endpoint", "event", "status", "attempts", "last_status_code", "next_attempt_at"]
    list_filter = [WorkspaceFilter, "status"]
    search_fields = ["id", "endpoint__url", "workspace__slug"]
    fields = [
        "id",
        "workspace",
        "endpoint",
        "event",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "delivered_at",
        "created_at",
    ]
    inlines = [WebhookAttemptInline]
    list_select_related = ["endpoint", "event"]


@admin.register(ExactSubscription)
class ExactSubscriptionAdmin(ReadOnlyAdmin):
    list_display = ["topic", "connection", "workspace", "state", "division", "last_attempt_at"]
    list_filter = [WorkspaceFilter, "state"]
    list_select_related = ["connection", "workspace"]
    search_fields = ["topic", "exact_id", "connection__name", "workspace__slug"]
    secret_fields = ("removal_token",)
    fields = [
        "id",
        "workspace",
        "connection",
        "topic",
        "selected",
        "state",
        "exact_id",
        "division",
        "callback_url",
        "attempts",
        "last_error",
        "last_attempt_at",
        "created_at",
        "updated_at",
    ]
