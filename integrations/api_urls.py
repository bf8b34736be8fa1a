from django.urls import include, path

from common.api import OptionalSlashRouter

from . import api

router = OptionalSlashRouter()
router.register("webhook-endpoints", api.WebhookEndpointViewSet, basename="webhook-endpoint")

urlpatterns = [
    path("workspaces/<slug:workspace_slug>/events/", api.WorkspaceEventsView.as_view(), name="api-workspace-events"),
    path(
        "workspaces/<slug:workspace_slug>/connections/<uuid:connection_id>/exact-webhooks",
        api.ConnectionExactWebhooksView.as_view(),
        name="api-connection-exact-webhooks",
    ),
    path(
        "workspaces/<slug:workspace_slug>/connections/<uuid:connection_id>/exact-webhooks/retry",
        api.ConnectionExactWebhooksRetryView.as_view(),
        name="api-connection-exact-webhooks-retry",
    ),
    path("workspaces/<slug:workspace_slug>/", include(router.urls)),
]
