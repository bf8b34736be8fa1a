from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from connections.selectors import connection_get
from workspaces.models import Role
from workspaces.tenancy import WorkspaceAPIMixin

from . import exact_subscriptions, selectors, services, stream
from .examples import ENDPOINTS_DESCRIPTION, EVENTS_DESCRIPTION
from .models import DeliveryStatus, WebhookEndpoint
from .payload import event_payload
from .serializers import (
    EventPageSerializer,
    EventsQuerySerializer,
    ExactSubscriptionSerializer,
    ExactTopicsSerializer,
    ExactWebhooksSerializer,
    SecretSerializer,
    WebhookDeliverySerializer,
    WebhookEndpointCreatedSerializer,
    WebhookEndpointCreateSerializer,
    WebhookEndpointSerializer,
    WebhookEndpointUpdateSerializer,
)

# Responses that show a secret once must not be kept by any cache.
NO_STORE = {"Cache-Control": "no-store"}
ADMINS_ONLY = dict.fromkeys(WorkspaceAPIMixin.role_map, Role.ADMIN)


class WorkspaceEventsView(WorkspaceAPIMixin, APIView):
    role_map = ADMINS_ONLY  # events name every connection of the workspace

    @extend_schema(
        summary="Read the event stream",
        description=EVENTS_DESCRIPTION,
        parameters=[EventsQuerySerializer],
        responses=EventPageSerializer,
    )
    def get(self, request):
        query = EventsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        after, limit = query.validated_data["after"], query.validated_data["limit"]
        stream.workspace_events_catch_up(workspace_id=self.workspace.id)
        events = selectors.workspace_events_after(
            workspace=self.workspace, after=after, limit=limit + 1, types=query.validated_data.get("types")
        )
        page = events[:limit]
        return Response(
            {
                "events": [event_payload(event) for event in page],
                "next_cursor": page[-1].cursor if page else after,
                "has_more": len(events) > limit,
            }
        )


class WebhookEndpointViewSet(
    WorkspaceAPIMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Outgoing webhook endpoints (workspace admins, or API keys with read/write)."""

    serializer_class = WebhookEndpointSerializer
    queryset = WebhookEndpoint.objects.none()
    role_map = ADMINS_ONLY

    def get_queryset(self):
        return selectors.webhook_endpoints_list(workspace=self.workspace)

    @extend_schema(
        summary="Register a webhook endpoint",
        description=ENDPOINTS_DESCRIPTION,
        request=WebhookEndpointCreateSerializer,
        responses={201: WebhookEndpointCreatedSerializer},
    )
    def create(self, request):
        data = WebhookEndpointCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint, secret = services.webhook_endpoint_create(
            workspace=self.workspace, actor=self.actor, **data.validated_data
        )
        endpoint.secret = secret
        return Response(
            WebhookEndpointCreatedSerializer(endpoint).data, status=status.HTTP_201_CREATED, headers=NO_STORE
        )

    @extend_schema(request=WebhookEndpointUpdateSerializer, responses=WebhookEndpointSerializer)
    def partial_update(self, request, pk):
        data = WebhookEndpointUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = services.webhook_endpoint_update(
            workspace=self.workspace, endpoint=self.get_object(), actor=self.actor, **data.validated_data
        )
        return Response(WebhookEndpointSerializer(endpoint).data)

    def destroy(self, request, pk):
        services.webhook_endpoint_delete(workspace=self.workspace, endpoint=self.get_object(), actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=SecretSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, pk):
        """A new signing secret, effective at once; shown only in this response."""
        secret = services.webhook_endpoint_rotate_secret(
            workspace=self.workspace, endpoint=self.get_object(), actor=self.actor
        )
        return Response({"secret": secret}, headers=NO_STORE)

    @extend_schema(
        parameters=[OpenApiParameter("status", enum=DeliveryStatus.values, required=False)],
        responses=WebhookDeliverySerializer(many=True),
    )
    @action(detail=True, methods=["get"], url_path="deliveries")
    def deliveries(self, request, pk):
        """The delivery log, newest first: every attempt with its status, duration and response excerpt."""
        wanted = request.query_params.get("status")
        deliveries = selectors.webhook_deliveries_list(
            workspace=self.workspace,
            endpoint=self.get_object(),
            status=wanted if wanted in DeliveryStatus.values else None,
        )
        page = self.paginate_queryset(deliveries)
        return self.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)

    @extend_schema(request=None, responses={202: WebhookDeliverySerializer})
    @action(detail=True, methods=["post"], url_path=r"deliveries/(?P<delivery_id>[0-9a-fA-F-]{32,36})/resend")
    def resend(self, request, pk, delivery_id):
        """Send a delivery again now, with the same webhook-id."""
        endpoint = self.get_object()
        found = selectors.webhook_delivery_get(workspace=self.workspace, endpoint=endpoint, delivery_id=delivery_id)
        if found is None:
            raise NotFound("No such delivery of this endpoint.")
        services.webhook_delivery_resend(workspace=self.workspace, delivery_obj=found, actor=self.actor)
        found = selectors.webhook_delivery_get(workspace=self.workspace, endpoint=endpoint, delivery_id=delivery_id)
        return Response(WebhookDeliverySerializer(found).data, status=status.HTTP_202_ACCEPTED)


class ExactWebhooksMixin(WorkspaceAPIMixin):
    def connection_or_404(self, connection_id):
        connection = connection_get(workspace=self.workspace, membership=self.membership, connection_id=connection_id)
        if connection is None:
            raise NotFound("No such connection.")
        return connection

    def body(self, connection) -> dict:
        client = connection.oauth_client
        return {
            "callback_url": exact_subscriptions.callback_url(client),
            "callback_is_https": exact_subscriptions.callback_is_https(),
            "webhook_secret_set": bool(client.webhook_secret),
            "known_topics": list(exact_subscriptions.KNOWN_TOPICS),
            "subscriptions": ExactSubscriptionSerializer(
                selectors.exact_subscriptions_of(connection=connection), many=True
            ).data,
        }


class ConnectionExactWebhooksView(ExactWebhooksMixin, APIView):
    """An Exact Online connection's webhook topics and their subscriptions at Exact.

    GET: members for their own connections, admins and API keys for all; PUT
    (admins, ``write``) sets exactly the topics to subscribe to.
    """

    @extend_schema(responses=ExactWebhooksSerializer)
    def get(self, request, connection_id):
        return Response(self.body(self.connection_or_404(connection_id)))

    @extend_schema(request=ExactTopicsSerializer, responses=ExactWebhooksSerializer)
    def put(self, request, connection_id):
        connection = self.connection_or_404(connection_id)
        data = ExactTopicsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        exact_subscriptions.exact_topics_set(
            workspace=self.workspace, connection=connection, topics=data.validated_data["topics"], actor=self.actor
        )
        return Response(self.body(connection))


class ConnectionExactWebhooksRetryView(ExactWebhooksMixin, APIView):
    """Try the connection's failed subscriptions again (admins, ``write``)."""

    @extend_schema(request=None, responses=ExactWebhooksSerializer)
    def post(self, request, connection_id):
        connection = self.connection_or_404(connection_id)
        exact_subscriptions.exact_subscriptions_retry(workspace=self.workspace, connection=connection, actor=self.actor)
        return Response(self.body(connection))
