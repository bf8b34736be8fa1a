from django.db.models import Q
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.models import AuditEvent
from audit.services import Actor
from common.schema import error

from . import selectors, services
from .models import ApiKey, Invitation, Membership, Role
from .serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    AuditEventSerializer,
    InvitationCreatedSerializer,
    InvitationCreateSerializer,
    InvitationSerializer,
    MemberRoleSerializer,
    MemberSerializer,
    WorkspaceSerializer,
    WorkspaceUpdateSerializer,
)
from .tenancy import IsUserOrApiKey, WorkspaceAPIMixin

# Responses that show a secret once (a new key, an invitation link) must not be kept by any cache.
NO_STORE = {"Cache-Control": "no-store"}


class PeopleOnlyWrites:
    """Keys may read these objects; only signed-in admins may change them."""

    key_write_refusal = "API keys cannot manage people or keys; sign in as a workspace admin."

    def api_key_refusal(self, request) -> str | None:
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            return self.key_write_refusal
        return super().api_key_refusal(request)


class WorkspaceListView(APIView):
    """The caller's workspaces; signed-in users can create one."""

    permission_classes = [IsUserOrApiKey]

    @extend_schema(responses=WorkspaceSerializer(many=True))
    def get(self, request):
        if isinstance(request.auth, ApiKey):
            if not request.auth.has_scope("read"):
                raise exceptions.PermissionDenied("This API key lacks the “read” scope.")
            workspaces, roles = [request.auth.workspace], {}
        else:
            memberships = selectors.memberships_for_user(user=request.user)
            workspaces = sorted((m.workspace for m in memberships), key=lambda w: w.name.lower())
            roles = {m.workspace_id: m.role for m in memberships}
        return Response(WorkspaceSerializer(workspaces, many=True, context={"roles": roles}).data)

    @extend_schema(request=WorkspaceSerializer, responses={201: WorkspaceSerializer})
    def post(self, request):
        if isinstance(request.auth, ApiKey):
            raise exceptions.PermissionDenied("API keys cannot create workspaces; sign in.")
        data = WorkspaceSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        workspace = services.workspace_create(
            user=request.user,
            actor=Actor.from_request(request),
            name=data.validated_data["name"],
            slug=data.validated_data.get("slug", ""),
        )
        body = WorkspaceSerializer(workspace, context={"roles": {workspace.id: "admin"}}).data
        return Response(body, status=status.HTTP_201_CREATED)


class WorkspaceDetailView(PeopleOnlyWrites, WorkspaceAPIMixin, APIView):
    """The workspace; signed-in admins rename it (API keys may only read it)."""

    key_write_refusal = "API keys cannot change workspace settings; sign in as a workspace admin."

    @extend_schema(responses=WorkspaceSerializer)
    def get(self, request):
        return Response(self._body())

    @extend_schema(request=WorkspaceUpdateSerializer, responses=WorkspaceSerializer)
    def patch(self, request):
        data = WorkspaceUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.workspace_rename(workspace=self.workspace, name=data.validated_data["name"], actor=self.actor)
        return Response(self._body())

    def _body(self) -> dict:
        roles = {self.workspace.id: self.membership.role} if self.membership else {}
        return WorkspaceSerializer(self.workspace, context={"roles": roles}).data


class LeaveWorkspaceView(WorkspaceAPIMixin, APIView):
    """The signed-in caller leaves the workspace (not the last admin)."""

    role_map = {**WorkspaceAPIMixin.role_map, "POST": Role.MEMBER}
    api_keys_allowed = False

    @extend_schema(request=None, responses={204: None})
    def post(self, request):
        services.membership_leave(workspace=self.workspace, user=request.user, actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberViewSet(
    PeopleOnlyWrites, WorkspaceAPIMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = MemberSerializer
    queryset = Membership.objects.none()
    filterset_fields = ["role"]

    def get_queryset(self):
        return selectors.members_list(workspace=self.workspace)

    @extend_schema(request=MemberRoleSerializer, responses=MemberSerializer)
    def partial_update(self, request, pk):
        data = MemberRoleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.membership_change_role(
            workspace=self.workspace, membership=self.get_object(), role=data.validated_data["role"], actor=self.actor
        )
        return Response(MemberSerializer(membership).data)

    def destroy(self, request, pk):
        services.membership_remove(workspace=self.workspace, membership=self.get_object(), actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("status", str, enum=["pending"], description="`pending`: only pending ones.")]
    )
)
class InvitationViewSet(
    PeopleOnlyWrites, WorkspaceAPIMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = InvitationSerializer
    queryset = Invitation.objects.none()
    role_map = {**WorkspaceAPIMixin.role_map, "GET": "admin"}

    def get_queryset(self):
        queryset = selectors.invitations_list(workspace=self.workspace)
        if self.request.query_params.get("status") == "pending":
            queryset = selectors.invitations_pending(workspace=self.workspace)
        return queryset

    @extend_schema(
        request=InvitationCreateSerializer,
        responses={
            201: InvitationCreatedSerializer,
            503: error("The invitation e-mail could not be sent (`email_failed`); nothing was kept. Try again later."),
        },
    )
    def create(self, request):
        data = InvitationCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        invitation, token = services.invitation_create(
            workspace=self.workspace, actor=self.actor, **data.validated_data
        )
        invitation.accept_url = services.invitation_accept_url(token)
        return Response(InvitationCreatedSerializer(invitation).data, status=status.HTTP_201_CREATED, headers=NO_STORE)

    @extend_schema(request=None, responses={200: InvitationSerializer})
    def destroy(self, request, pk):
        invitation = services.invitation_revoke(
            workspace=self.workspace, invitation=self.get_object(), actor=self.actor
        )
        return Response(InvitationSerializer(invitation).data)


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("active", bool, description="`true`: only keys that are not revoked.")]
    )
)
class ApiKeyViewSet(
    PeopleOnlyWrites, WorkspaceAPIMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = ApiKeySerializer
    queryset = ApiKey.objects.none()
    role_map = {**WorkspaceAPIMixin.role_map, "GET": "admin"}

    def get_queryset(self):
        queryset = selectors.api_keys_list(workspace=self.workspace)
        if self.request.query_params.get("active") in ("1", "true"):
            queryset = queryset.filter(revoked_at__isnull=True)
        return queryset

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeyCreatedSerializer})
    def create(self, request):
        data = ApiKeyCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key, raw = services.api_key_create(workspace=self.workspace, actor=self.actor, **data.validated_data)
        key.key = raw
        return Response(ApiKeyCreatedSerializer(key).data, status=status.HTTP_201_CREATED, headers=NO_STORE)

    @extend_schema(request=None, responses={200: ApiKeySerializer})
    def destroy(self, request, pk):
        key = services.api_key_revoke(workspace=self.workspace, api_key=self.get_object(), actor=self.actor)
        return Response(ApiKeySerializer(key).data)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("action", str, description="An action (`api_key.created`) or its prefix (`api_key`).")
        ]
    )
)
class AuditEventViewSet(WorkspaceAPIMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The workspace's audit trail, newest first (admins); ``?action=`` filters by action or its prefix."""

    serializer_class = AuditEventSerializer
    queryset = AuditEvent.objects.none()
    role_map = dict.fromkeys(WorkspaceAPIMixin.role_map, Role.ADMIN)

    def get_queryset(self):
        queryset = selectors.audit_events_list(workspace=self.workspace)
        if action_name := self.request.query_params.get("action"):
            queryset = queryset.filter(Q(action=action_name) | Q(action__startswith=f"{action_name}."))
        return queryset
