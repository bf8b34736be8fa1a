from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("workspaces/new/", views.WorkspaceCreateView.as_view(), name="workspace-create"),
    path("invitations/<str:token>/", views.InvitationView.as_view(), name="invitation"),
    path("w/<slug:workspace_slug>/leave/", views.LeaveView.as_view(), name="workspace-leave"),
    path("w/<slug:workspace_slug>/admin/", views.AdminConsoleView.as_view(), name="workspace-console"),
    path("w/<slug:workspace_slug>/admin/settings/", views.SettingsView.as_view(), name="workspace-settings"),
    path("w/<slug:workspace_slug>/admin/members/", views.MembersView.as_view(), name="workspace-members"),
    path(
        "w/<slug:workspace_slug>/admin/members/<uuid:membership_id>/role/",
        views.MemberRoleView.as_view(),
        name="workspace-member-role",
    ),
    path(
        "w/<slug:workspace_slug>/admin/members/<uuid:membership_id>/remove/",
        views.MemberRemoveView.as_view(),
        name="workspace-member-remove",
    ),
    path(
        "w/<slug:workspace_slug>/admin/invitations/<uuid:invitation_id>/revoke/",
        views.InvitationRevokeView.as_view(),
        name="workspace-invitation-revoke",
    ),
    path(
        "w/<slug:workspace_slug>/admin/invitations/<uuid:invitation_id>/resend/",
        views.InvitationResendView.as_view(),
        name="workspace-invitation-resend",
    ),
    path("w/<slug:workspace_slug>/admin/api-keys/", views.ApiKeysView.as_view(), name="workspace-api-keys"),
    path(
        "w/<slug:workspace_slug>/admin/api-keys/<uuid:key_id>/revoke/",
        views.ApiKeyRevokeView.as_view(),
        name="workspace-api-key-revoke",
    ),
    path("w/<slug:workspace_slug>/admin/audit/", views.AuditLogView.as_view(), name="workspace-audit"),
    path("w/<slug:workspace_slug>/admin/oauth-clients/", include("oauthclients.urls")),
    path("w/<slug:workspace_slug>/connections/", include("connections.urls")),
]
