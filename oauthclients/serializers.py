from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import OAuthClient
from .providers import AUTH_METHODS, PROVIDER_CHOICES


# Lifetimes and the client's id and secret are checked by the service, which reports every problem of a
# request at once with messages people understand; the schema still says what a valid value is.
@extend_schema_field({"type": "integer", "minimum": 1, "maximum": 2**63 - 1})
class AccessLifetime(serializers.JSONField):
    """Milliseconds; empty or null: the provider's default."""


@extend_schema_field({"type": "integer", "minimum": 0, "maximum": 2**63 - 1})
class RefreshLifetime(serializers.JSONField):
    """Milliseconds, 0 for never; empty or null: the provider's default."""


@extend_schema_field({"type": "string", "minLength": 1})
class NotBlank(serializers.CharField):
    """Refused by the service when blank."""


class OAuthClientSerializer(serializers.ModelSerializer):
    """Secrets are write-only: responses never carry them."""

    client_id = NotBlank(required=True, allow_blank=True, max_length=255)
    client_secret = NotBlank(write_only=True, required=True, allow_blank=True, style={"input_type": "password"})
    webhook_secret = serializers.CharField(
        write_only=True, required=False, allow_blank=True, style={"input_type": "password"}
    )
    provider = serializers.ChoiceField(choices=PROVIDER_CHOICES)
    redirect_uri = serializers.CharField(read_only=True)
    connections_count = serializers.IntegerField(read_only=True, default=0)
    has_webhook_secret = serializers.SerializerMethodField()
    # Lifetimes and URLs are validated by the service, with messages people understand.
    authorization_url = serializers.CharField(required=False, allow_blank=True, max_length=500)
    token_url = serializers.CharField(required=False, allow_blank=True, max_length=500)
    api_base_url = serializers.CharField(required=False, allow_blank=True, max_length=500)
    identity_url = serializers.CharField(required=False, allow_blank=True, max_length=500)
    access_token_expires_in = AccessLifetime(required=False, help_text="Milliseconds, > 0.")
    refresh_token_expires_in = RefreshLifetime(required=False, help_text="Milliseconds, 0 = never.")
    token_endpoint_auth_method = serializers.ChoiceField(choices=AUTH_METHODS, required=False)
    use_pkce = serializers.BooleanField(required=False, allow_null=True, default=None)

    class Meta:
        model = OAuthClient
        fields = [
            "id",
            "provider",
            "site",
            "name",
            "client_id",
            "client_secret",
            "webhook_secret",
            "has_webhook_secret",
            "authorization_url",
            "token_url",
            "scopes",
            "access_token_expires_in",
            "refresh_token_expires_in",
            "token_endpoint_auth_method",
            "use_pkce",
            "api_base_url",
            "identity_url",
            "redirect_uri",
            "connections_count",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "redirect_uri", "connections_count", "created_at", "updated_at"]
        extra_kwargs = {
            "name": {"validators": []},
            "site": {"required": False},
            "scopes": {"required": False},
        }

    def get_has_webhook_secret(self, client) -> bool:
        return bool(client.webhook_secret)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["access_token_expires_in"] = instance.access_token_expires_in
        data["refresh_token_expires_in"] = instance.refresh_token_expires_in
        # What the client really uses (Exact Online derives both from the token URL's origin).
        data["api_base_url"] = instance.api_base
        data["identity_url"] = instance.provider_spec.resolved_identity_url(instance)
        return data


class OAuthClientUpdateSerializer(OAuthClientSerializer):
    client_id = NotBlank(required=False, allow_blank=True, max_length=255)
    client_secret = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        style={"input_type": "password"},
        help_text="A new value replaces the stored secret.",
    )
    provider = serializers.ChoiceField(choices=PROVIDER_CHOICES, read_only=True)


class ProviderSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    authorization_url = serializers.CharField()
    token_url = serializers.CharField()
    scopes = serializers.CharField()
    token_endpoint_auth_method = serializers.CharField()
    use_pkce = serializers.BooleanField()
    api_base_url = serializers.CharField()
    identity_url = serializers.CharField()
    access_token_expires_in = serializers.IntegerField()
    refresh_token_expires_in = serializers.IntegerField()
    rotates_refresh_token = serializers.BooleanField()
    single_grant_per_account = serializers.BooleanField(
        help_text="The provider keeps one authorization per app and account: a new one ends the older."
    )
    refresh_window_seconds = serializers.IntegerField(allow_null=True)
    docs_url = serializers.CharField()
    sites = serializers.DictField()
