from django.urls import include, path
from rest_framework.routers import SimpleRouter

from . import api

router = SimpleRouter(trailing_slash="/?")
router.register("connections", api.ConnectionViewSet, basename="connection")

urlpatterns = [
    path("workspaces/<slug:workspace>/", include(router.urls)),
]
