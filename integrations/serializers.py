from rest_framework import serializers

from .models import EventType, ExactSubscription, WebhookAttempt, WebhookDelivery, WebhookEndpoint

MAX_EVENTS_PER_PAGE = 1000


class EventsQuerySerializer(serializers.Serializer):
    after = serializers.IntegerField(
        min_value=0, default=0, help_text="Return events with a cursor above this one (0: from the oldest kept)."
    )
    limit = serializers.IntegerField(min_value=1, max_value=MAX_EVENTS_PER_PAGE, default=100)
    types = serializers.CharField(
        required=False, allow_blank=True, help_text="Comma-separated event types to return, e.g. connection.revoked."
    )

    def validate_types(self, value: str) -> list[str]:
        types = [t.strip() for t in value.split(",") if t.strip()]
        unknown = sorted(set(types) - set(EventType.values))
        if unknown:
            raise serializers.ValidationError(
                f"Unknown event type “{unknown[0][:60]}”; choose from {', '.join(EventType.values)}."
            )
        return types


class EventSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="The event's id; also the webhook-id header of its webhooks.")
    cursor = serializers.IntegerField(help_text="Its place in the workspace's stream: pass it as after= to go on.")
    type = serializers.CharField(help_text=f"One of {', '.join(EventType.values)}.")
    timestamp = serializers.DateTimeField()
    data = serializers.JSONField()


class EventPageSerializer(serializers.Serializer):
    events = EventSerializer(many=True)
    next_cursor = serializers.IntegerField(help_text="The after= of the next request.")
    has_more = serializers.BooleanField(help_text="More events are waiting: ask again at once.")


class WebhookEndpointSerializer(serializers.ModelSerializer):
    """An endpoint as the API shows it: never its secret."""

    created_by = serializers.EmailField(source="created_by.email", read_only=True, default=None)

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "event_types",
            "enabled",
            "disabled_reason",
            "disabled_at",
            "failing_since",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(
        read_only=True, help_text="The signing secret (whsec_…). Shown only in this response."
    )

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookEndpointCreateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=500, help_text="https:// to a public host.")
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=EventType.choices),
        required=False,
        allow_empty=False,
        help_text="Default: every type.",
    )


class WebhookEndpointUpdateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=500, required=False)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=EventType.choices), required=False, allow_empty=False
    )
    enabled = serializers.BooleanField(required=False)


class SecretSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="The new signing secret (whsec_…). Shown only in this response.")


class WebhookAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = ["number", "started_at", "duration_ms", "status_code", "succeeded", "response_excerpt", "error"]
        read_only_fields = fields


class WebhookDeliverySerializer(serializers.ModelSerializer):
    event_id = serializers.UUIDField(source="event.id", read_only=True)
    event_type = serializers.CharField(source="event.type", read_only=True)
    event_cursor = serializers.IntegerField(source="event.cursor", read_only=True)
    attempt_log = WebhookAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event_id",
            "event_type",
            "event_cursor",
            "status",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "delivered_at",
            "created_at",
            "attempt_log",
        ]
        read_only_fields = fields


class ExactSubscriptionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ExactSubscription
        fields = ["topic", "state", "division", "exact_id", "last_error", "last_attempt_at", "updated_at"]
        read_only_fields = fields


class ExactWebhooksSerializer(serializers.Serializer):
    callback_url = serializers.CharField(help_text="Where Exact Online sends this client's events.")
    callback_is_https = serializers.BooleanField(help_text="Exact accepts only https callbacks.")
    webhook_secret_set = serializers.BooleanField(help_text="Without the client's webhook secret, events are refused.")
    known_topics = serializers.ListField(child=serializers.CharField())
    subscriptions = ExactSubscriptionSerializer(many=True)


class ExactTopicsSerializer(serializers.Serializer):
    topics = serializers.ListField(
        child=serializers.CharField(max_length=60),
        allow_empty=True,
        max_length=30,
        help_text='Exactly the topics to subscribe to, e.g. ["Accounts", "SalesInvoices"].',
    )
