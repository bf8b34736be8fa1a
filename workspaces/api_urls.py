from django.urls import include, path

from common.api import OptionalSlashRouter

from . import api

router = OptionalSlashRouter()
router.register("members", api.MemberViewSet, basename="member")
router.register("invitations", api.InvitationViewSet, basename="invitation")
router.register("api-keys", api.ApiKeyViewSet, basename="api-key")
router.register("audit-events", api.AuditEventViewSet, basename="audit-event")

urlpatterns = [
    path("workspaces/", api.WorkspaceListView.as_view(), name="api-workspace-list"),
    path("workspaces/<slug:workspace_slug>/", api.WorkspaceDetailView.as_view(), name="api-workspace-detail"),
    path("workspaces/<slug:workspace_slug>/leave", api.LeaveWorkspaceView.as_view(), name="api-workspace-leave"),
    path("workspaces/<slug:workspace_slug>/", include(router.urls)),
]
