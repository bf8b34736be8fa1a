from django.urls import include, path, re_path

from common.api import OptionalSlashRouter

from . import api

router = OptionalSlashRouter()
router.register("connections", api.ConnectionViewSet, basename="connection")

urlpatterns = [
    # Any path at all (empty, line breaks…) reaches the view, whose path rules answer 400 (connections/proxy.py).
    re_path(
        r"^workspaces/(?P<workspace_slug>[-a-zA-Z0-9_]+)/connections/(?P<pk>[0-9a-fA-F-]{32,36})/proxy/(?P<path>[\s\S]*)$",
        api.ConnectionProxyView.as_view(),
        name="connection-proxy",
    ),
    path("workspaces/<slug:workspace_slug>/", include(router.urls)),
]
