from django.urls import path

from . import views

urlpatterns = [
    path("", views.ConnectionListView.as_view(), name="connection-list"),
    path("new/", views.ConnectionCreateView.as_view(), name="connection-create"),
    path("<uuid:connection_id>/", views.ConnectionDetailView.as_view(), name="connection-detail"),
    path("<uuid:connection_id>/connect/", views.ConnectView.as_view(), name="connection-connect"),
    path("<uuid:connection_id>/refresh/", views.RefreshNowView.as_view(), name="connection-refresh"),
    path("<uuid:connection_id>/disconnect/", views.DisconnectView.as_view(), name="connection-disconnect"),
    path("<uuid:connection_id>/rename/", views.RenameView.as_view(), name="connection-rename"),
    path("<uuid:connection_id>/delete/", views.DeleteView.as_view(), name="connection-delete"),
]

oauth_urlpatterns = [
    path("oauth2/callback", views.oauth_callback, name="oauth-callback"),
    path("oauth2/result", views.oauth_result, name="oauth-result"),
    path("oauth2/connect/<str:token>", views.connect_link, name="oauth-connect-link"),
]

# The workspace's home page (/w/<workspace_slug>/) is its Overview of connections.
overview_urlpatterns = [
    path("w/<slug:workspace_slug>/", views.OverviewView.as_view(), name="workspace-overview"),
]
