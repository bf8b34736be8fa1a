from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from . import ratebudget
from .models import Connection, ConnectionEvent


class RateBudgetSerializer(serializers.Serializer):
    minutely_remaining = serializers.IntegerField(help_text="Calls left this minute.")
    minutely_reset = serializers.IntegerField(
        allow_null=True, help_text="When the minute's budget is full again: epoch milliseconds (null: not known yet)."
    )
    daily_remaining = serializers.IntegerField(help_text="Calls left today.")
    daily_reset = serializers.IntegerField(
        allow_null=True, help_text="When the day's budget is full again: epoch milliseconds (null: not known yet)."
    )


class AccountSerializer(serializers.Serializer):
    id = serializers.CharField(source="account_id")
    name = serializers.CharField(source="account_name")
    email = serializers.CharField(source="account_email")
    details = serializers.JSONField(source="account_details")


class ConnectionSerializer(serializers.ModelSerializer):
    """A connection as the API shows it: never its tokens."""

    oauth_client = serializers.UUIDField(source="oauth_client_id", read_only=True)
    oauth_client_name = serializers.CharField(source="oauth_client.name", read_only=True)
    provider = serializers.CharField(source="oauth_client.provider", read_only=True)
    owner = serializers.EmailField(
        source="owner.email", read_only=True, default=None, allow_null=True, help_text="null: created with an API key."
    )
    account = AccountSerializer(source="*", read_only=True)
    token_calls_today = serializers.IntegerField(
        read_only=True, help_text="Token-endpoint requests this UTC day (refreshes and failures)."
    )
    refresh_paused_at = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="Set while Tokenkeeper support has paused refreshing: no refresh happens, the token API "
        "serves the current token until it expires and then answers 409 refresh_paused.",
    )
    daily_token_budget = serializers.IntegerField(
        source="oauth_client.provider_spec.refresh_policy.daily_token_budget",
        read_only=True,
        allow_null=True,
        help_text="Token-endpoint requests the provider allows per day (null: no known limit).",
    )

    rate_budget = serializers.SerializerMethodField(
        help_text="What is left of the provider's API rate limits for this connection's company, as the proxy "
        "counts them for every caller (Exact Online: 60 calls a minute, 5,000 a day per division); null for "
        "providers whose limits Tokenkeeper does not keep."
    )

    @extend_schema_field(RateBudgetSerializer(allow_null=True))
    def get_rate_budget(self, connection) -> dict | None:
        return ratebudget.connection_budget(connection)

    class Meta:
        model = Connection
        fields = [
            "id",
            "name",
            "oauth_client",
            "oauth_client_name",
            "provider",
            "status",
            "owner",
            "account",
            "token_type",
            "granted_scopes",
            "access_token_expires_at",
            "refresh_token_expires_at",
            "refresh_due_at",
            "refresh_paused_at",
            "last_refreshed_at",
            "refresh_failures",
            "token_calls_today",
            "daily_token_budget",
            "rate_budget",
            "last_error",
            "last_error_at",
            "connected_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ConnectionRefreshedSerializer(ConnectionSerializer):
    refresh_result = serializers.CharField(
        read_only=True,
        help_text="What the refresh did: `refreshed`, `failed` (retried later), `needs_reauth` or `skipped`.",
    )
    refresh_detail = serializers.CharField(read_only=True)

    class Meta(ConnectionSerializer.Meta):
        fields = [*ConnectionSerializer.Meta.fields, "refresh_result", "refresh_detail"]
        read_only_fields = fields


class ConnectionCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    oauth_client = serializers.UUIDField(help_text="The id of an OAuth client of this workspace.")


class ConnectionUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)


class ConnectUrlSerializer(serializers.Serializer):
    connect_url = serializers.CharField(help_text="Open in a browser; single use, valid 15 minutes.")
    expires_at = serializers.DateTimeField()


class ConnectionEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = ConnectionEvent
        fields = ["id", "kind", "detail", "data", "created_at"]
        read_only_fields = fields


class AccessTokenSerializer(serializers.Serializer):
    access_token = serializers.CharField()
    token_type = serializers.CharField()
    expires_at = serializers.DateTimeField()
    expires_in = serializers.IntegerField(help_text="Seconds until the token expires.")


class RefreshScheduledSerializer(serializers.Serializer):
    status = serializers.CharField()
    refresh_at = serializers.DateTimeField()
    detail = serializers.CharField()


class TokenQuerySerializer(serializers.Serializer):
    min_valid = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text="Seconds the token must stay valid, at most half its lifetime (Exact Online: 300). When the "
        "current token expires sooner, it is refreshed first; when the provider does not accept a refresh yet "
        "(Exact Online: only in the last 30 s), the request waits for its window (at most "
        "`TOKEN_MIN_VALID_MAX_WAIT`, 35 s) or answers 409 `not_valid_long_enough` with `retry_after`.",
    )
