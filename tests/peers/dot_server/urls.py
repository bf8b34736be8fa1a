from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import views

urlpatterns = [
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("accounts/login/", auth_views.LoginView.as_view(template_name="registration/login.html"), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/me", views.MeView.as_view(), name="me"),
    path("healthz", views.healthz),
    path("_peer/users", views.control_user),
    path("_peer/apps", views.control_app),
    path("_peer/expire-access-tokens", views.control_expire_access_tokens),
    path("_peer/revoke-all", views.control_revoke_all),
    path("_peer/state", views.control_state),
]
