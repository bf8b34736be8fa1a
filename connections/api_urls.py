from django.urls import include, path

from common.api import OptionalSlashRouter

from . import api

router = OptionalSlashRouter()
router.register("connections", api.ConnectionViewSet, basename="connection")

urlpatterns = [
    path(
        "workspaces/<slug:workspace_slug>/connections/<uuid:pk>/proxy/<path:path>",
        api.ConnectionProxyView.as_view(),
        name="connection-proxy",
    ),
    path("workspaces/<slug:workspace_slug>/", include(router.urls)),
]
