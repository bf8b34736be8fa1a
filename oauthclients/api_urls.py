from django.urls import include, path

from common.api import OptionalSlashRouter

from . import api

router = OptionalSlashRouter()
router.register("oauth-clients", api.OAuthClientViewSet, basename="oauth-client")

urlpatterns = [
    path("providers/", api.ProviderListView.as_view(), name="api-provider-list"),
    path("workspaces/<slug:workspace_slug>/", include(router.urls)),
]
