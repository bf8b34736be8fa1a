"""Pages under ``/w/<workspace_slug>/`` (included by config/urls.py) and Exact Online's receiver."""

from django.urls import path

from . import views

urlpatterns = [
    path("admin/webhooks/", views.EndpointListView.as_view(), name="webhook-endpoint-list"),
    path("admin/webhooks/<uuid:endpoint_id>/", views.EndpointDetailView.as_view(), name="webhook-endpoint-detail"),
    path(
        "admin/webhooks/<uuid:endpoint_id>/rotate-secret/",
        views.EndpointRotateSecretView.as_view(),
        name="webhook-endpoint-rotate-secret",
    ),
    path(
        "admin/webhooks/<uuid:endpoint_id>/delete/", views.EndpointDeleteView.as_view(), name="webhook-endpoint-delete"
    ),
    path(
        "admin/webhooks/<uuid:endpoint_id>/deliveries/<uuid:delivery_id>/resend/",
        views.DeliveryResendView.as_view(),
        name="webhook-delivery-resend",
    ),
    path(
        "connections/<uuid:connection_id>/webhooks/",
        views.ConnectionExactWebhooksView.as_view(),
        name="connection-exact-webhooks",
    ),
    path(
        "connections/<uuid:connection_id>/webhooks/retry/",
        views.ConnectionExactWebhooksRetryView.as_view(),
        name="connection-exact-webhooks-retry",
    ),
]

receiver_urlpatterns = [
    path("webhooks/exact-online/<uuid:oauth_client_id>/", views.exact_online_webhook, name="exact-online-webhook"),
]
