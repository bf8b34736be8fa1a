from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from common.errors import ServiceError
from common.schema import error
from oauthclients.selectors import oauth_client_get
from workspaces.tenancy import WorkspaceAPIMixin

from . import flow, selectors, services
from .access import connection_access_token
from .filters import ConnectionFilter
from .models import Connection
from .refresh import Outcome
from .serializers import (
    AccessTokenSerializer,
    ConnectionCreateSerializer,
    ConnectionEventSerializer,
    ConnectionRefreshedSerializer,
    ConnectionSerializer,
    ConnectionUpdateSerializer,
    ConnectUrlSerializer,
    RefreshScheduledSerializer,
)


class ConnectionViewSet(WorkspaceAPIMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Connections. Members create them and manage their own; admins and API keys see all."""

    serializer_class = ConnectionSerializer
    queryset = Connection.objects.none()
    filterset_class = ConnectionFilter
    role_map = dict.fromkeys(("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"), "member")
    action_scopes = {"token": "tokens"}
    action_roles = {"refresh": "admin"}

    def get_queryset(self):
        return selectors.connections_visible(workspace=self.workspace, membership=self.membership).order_by("name")

    @extend_schema(request=ConnectionCreateSerializer, responses={201: ConnectionSerializer})
    def create(self, request):
        data = ConnectionCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        client = oauth_client_get(workspace=self.workspace, client_id=data.validated_data["oauth_client"])
        if client is None:
            raise ServiceError("No OAuth client with that id in this workspace.", field="oauth_client")
        owner = request.user if request.user.is_authenticated else None
        connection = services.connection_create(
            workspace=self.workspace,
            oauth_client=client,
            owner=owner,
            actor=self.actor,
            name=data.validated_data["name"],
        )
        return Response(ConnectionSerializer(connection).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ConnectionUpdateSerializer, responses=ConnectionSerializer)
    def partial_update(self, request, pk):
        data = ConnectionUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        connection = services.connection_rename(
            workspace=self.workspace, connection=self.get_object(), actor=self.actor, name=data.validated_data["name"]
        )
        return Response(ConnectionSerializer(connection).data)

    def destroy(self, request, pk):
        services.connection_delete(workspace=self.workspace, connection=self.get_object(), actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=ConnectUrlSerializer)
    @action(detail=True, methods=["post"], url_path="authorize")
    def authorize(self, request, pk):
        """A single-use Tokenkeeper URL that an end user opens in a browser to (re)authorize."""
        link, url = flow.connect_link_create(workspace=self.workspace, connection=self.get_object(), actor=self.actor)
        return Response({"connect_url": url, "expires_at": link.expires_at}, headers={"Cache-Control": "no-store"})

    @extend_schema(request=None, responses=ConnectionSerializer)
    @action(detail=True, methods=["post"], url_path="disconnect")
    def disconnect(self, request, pk):
        connection = services.connection_disconnect(
            workspace=self.workspace, connection=self.get_object(), actor=self.actor
        )
        return Response(ConnectionSerializer(connection).data)

    @extend_schema(responses=ConnectionEventSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="events", filter_backends=[])
    def events(self, request, pk):
        connection = self.get_object()
        page = self.paginate_queryset(connection.events.order_by("-created_at"))
        return self.get_paginated_response(ConnectionEventSerializer(page, many=True).data)

    @extend_schema(
        responses={
            200: AccessTokenSerializer,
            409: error(
                "The connection cannot give tokens: `pending` (not authorized yet), `needs_reauth` or `revoked`."
            ),
            503: error(
                "The token has expired and refreshing it failed (`refresh_failing`); Tokenkeeper keeps retrying."
            ),
        }
    )
    @action(detail=True, methods=["get"], url_path="token")
    def token(self, request, pk):
        """A valid access token now: from the database, or refreshed on demand when due.

        Needs the ``tokens`` scope (or a member's session). 409 when the
        connection needs re-authorization, is revoked or not yet authorized.
        """
        token = connection_access_token(connection=self.get_object())
        return Response(token.as_dict(timezone.now()), headers={"Cache-Control": "no-store"})

    @extend_schema(
        request=None,
        responses={
            200: ConnectionRefreshedSerializer,
            202: RefreshScheduledSerializer,
            409: error(
                "Not refreshed: the connection cannot be refreshed (`not_refreshable`: pending, needs "
                "re-authorization or revoked), or the provider's budget is spent (`provider_budget`)."
            ),
        },
    )
    @action(detail=True, methods=["post"], url_path="refresh")
    def refresh(self, request, pk):
        """Force a refresh now (admins). Respects the provider's window: answers when it will happen."""
        connection = self.get_object()
        result = services.connection_refresh_now(workspace=self.workspace, connection=connection, actor=self.actor)
        if result.outcome == Outcome.SCHEDULED:
            return Response(
                {"status": "scheduled", "refresh_at": result.retry_at, "detail": result.message},
                status=status.HTTP_202_ACCEPTED,
            )
        body = ConnectionSerializer(result.connection).data
        body["refresh_result"] = str(result.outcome)
        body["refresh_detail"] = result.message
        return Response(body)
