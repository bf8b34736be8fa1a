from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from common import health
from common.views import favicon
from connections.urls import oauth_urlpatterns, overview_urlpatterns
from integrations.urls import receiver_urlpatterns

admin.site.site_header = "Tokenkeeper staff"
admin.site.site_title = "Tokenkeeper staff"
# Staff sign in through allauth's login (rate limits, two-factor authentication),
# not the admin's own form, which knows neither.
admin.site.login = secure_admin_login(admin.site.login)

api_v1 = [
    path("", include("workspaces.api_urls")),
    path("", include("oauthclients.api_urls")),
    path("", include("connections.api_urls")),
    path("", include("integrations.api_urls")),
]

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics_view, name="metrics"),
    path("django-admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("favicon.ico", favicon, name="favicon"),
    *oauth_urlpatterns,
    *receiver_urlpatterns,
    path("w/<slug:workspace_slug>/", include("integrations.urls")),
    *overview_urlpatterns,
    path("", include("workspaces.urls")),
]

handler404 = "common.errorpages.page_not_found"
handler500 = "common.errorpages.server_error"
