import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from common.crypto import EncryptedTextField

from .providers import AUTH_METHODS, CLIENT_SECRET_BASIC, PROVIDER_CHOICES, get_provider


def redirect_uri() -> str:
    """The one callback every provider app must list: ``{PUBLIC_BASE_URL}/oauth2/callback``."""
    return f"{settings.PUBLIC_BASE_URL}/oauth2/callback"


class OAuthClient(models.Model):
    """An OAuth 2.0 app registered at a provider. Secrets are write-only and encrypted."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="oauth_clients")
    provider = models.CharField("Type", max_length=40, choices=PROVIDER_CHOICES)
    site = models.CharField(max_length=10, blank=True, help_text="Exact Online country site, e.g. nl.")
    name = models.CharField(max_length=100)
    client_id = models.CharField("Client ID", max_length=255)
    client_secret = EncryptedTextField("Client Secret")
    webhook_secret = EncryptedTextField("Webhook Secret", blank=True, default="")
    authorization_url = models.URLField("Authorization URL", max_length=500)
    token_url = models.URLField("Token URL", max_length=500)
    scopes = models.CharField(max_length=1000, blank=True, help_text="Space-separated.")
    access_token_expires_in = models.BigIntegerField("Access Token Expires In", help_text="Milliseconds.")
    refresh_token_expires_in = models.BigIntegerField(
        "Refresh Token Expires In", default=0, help_text="Milliseconds; 0 means never."
    )
    token_endpoint_auth_method = models.CharField(
        "Client authentication method", max_length=30, choices=AUTH_METHODS, default=CLIENT_SECRET_BASIC
    )
    use_pkce = models.BooleanField("Use PKCE (S256)", default=True)
    api_base_url = models.URLField("API base URL", max_length=500, blank=True)
    identity_url = models.URLField("Identity URL", max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "OAuth client"
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="oauthclient_unique_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def provider_spec(self):
        return get_provider(self.provider)

    @property
    def redirect_uri(self) -> str:
        return redirect_uri()

    @property
    def api_base(self) -> str:
        return self.provider_spec.resolved_api_base_url(self)
