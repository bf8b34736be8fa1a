from django.urls import include, path
from rest_framework.routers import SimpleRouter

from . import api

router = SimpleRouter()
router.register("oauth-clients", api.OAuthClientViewSet, basename="oauth-client")

urlpatterns = [
    path("providers/", api.ProviderListView.as_view(), name="api-provider-list"),
    path("workspaces/<slug:workspace>/", include(router.urls)),
]
