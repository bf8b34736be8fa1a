from django.urls import include, path

from common.api import OptionalSlashRouter

from . import api

router = OptionalSlashRouter()
router.register("connections", api.ConnectionViewSet, basename="connection")

urlpatterns = [
    path("workspaces/<slug:workspace_slug>/", include(router.urls)),
]
