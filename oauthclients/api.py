from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from workspaces.models import ApiKey
from workspaces.tenancy import IsUserOrApiKey, WorkspaceAPIMixin

from . import selectors, services
from .models import OAuthClient
from .providers import PROVIDERS
from .serializers import OAuthClientSerializer, OAuthClientUpdateSerializer, ProviderSerializer


class ProviderListView(APIView):
    """The provider types an OAuth client can have, with their defaults."""

    permission_classes = [IsUserOrApiKey]

    @extend_schema(responses=ProviderSerializer(many=True))
    def get(self, request):
        if isinstance(request.auth, ApiKey) and not request.auth.has_scope("read"):
            raise exceptions.PermissionDenied("This API key lacks the “read” scope.")
        return Response([p.as_defaults() for p in PROVIDERS.values()])


class OAuthClientViewSet(WorkspaceAPIMixin, viewsets.ModelViewSet):
    """OAuth clients: members read; admins (or ``write`` keys) change them."""

    serializer_class = OAuthClientSerializer
    queryset = OAuthClient.objects.none()
    filterset_fields = ["provider"]
    http_method_names = ["get", "post", "patch", "put", "delete", "head", "options"]

    def get_queryset(self):
        return selectors.oauth_clients_list(workspace=self.workspace).order_by("name")

    def get_serializer_class(self):
        return OAuthClientUpdateSerializer if self.action in ("update", "partial_update") else OAuthClientSerializer

    def perform_create(self, serializer):
        client = services.oauth_client_create(workspace=self.workspace, actor=self.actor, **serializer.validated_data)
        serializer.instance = selectors.oauth_client_get(workspace=self.workspace, client_id=client.id)

    def perform_update(self, serializer):
        client = services.oauth_client_update(
            workspace=self.workspace, client=serializer.instance, actor=self.actor, **serializer.validated_data
        )
        serializer.instance = selectors.oauth_client_get(workspace=self.workspace, client_id=client.id)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "revoke_connections", bool, description="Confirm that connections using the client will be revoked."
            )
        ]
    )
    def destroy(self, request, *args, **kwargs):
        revoke = request.query_params.get("revoke_connections", "").lower() in ("1", "true", "yes")
        services.oauth_client_delete(
            workspace=self.workspace, client=self.get_object(), actor=self.actor, revoke_connections=revoke
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
