"""The integrations' rows: the workspace event stream, signed outgoing webhooks
(endpoints, deliveries, attempts) and Exact Online webhook subscriptions."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from common.crypto import EncryptedTextField


class EventType(models.TextChoices):
    """What the event stream carries (and outgoing webhooks can subscribe to)."""

    CONNECTION_AUTHORIZED = "connection.authorized", "Connection authorized"
    CONNECTION_REFRESH_FAILED = "connection.refresh_failed", "Refresh failed"
    CONNECTION_RECOVERED = "connection.recovered", "Connection recovered"
    CONNECTION_NEEDS_REAUTH = "connection.needs_reauth", "Connection needs re-authorization"
    CONNECTION_RECONNECTED = "connection.reconnected", "Connection reconnected"
    CONNECTION_REVOKED = "connection.revoked", "Connection revoked"
    EXACT_ONLINE_WEBHOOK = "exact_online.webhook", "Exact Online webhook received"


class WorkspaceEvent(models.Model):
    """One event of a workspace's stream.

    Written without a cursor in the transaction that made the change (an
    outbox row); ``integrations.stream.workspace_events_publish`` numbers
    committed rows afterwards, one publisher per workspace at a time, so the
    cursor follows commit order and a reader never skips a row
    (docs/integrations.md, "Why the cursor is safe").
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="events", db_index=False
    )
    cursor = models.BigIntegerField(null=True, blank=True, help_text="Set when published; increases per workspace.")
    type = models.CharField(max_length=40, choices=EventType.choices)
    connection = models.ForeignKey(
        "connections.Connection", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    data = models.JSONField(default=dict, blank=True)
    # Provider events delivered more than once are stored once: same key, same event.
    dedupe_key = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["workspace", "cursor"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "cursor"], name="workspace_event_cursor"),
            models.UniqueConstraint(
                fields=["workspace", "dedupe_key"],
                name="workspace_event_dedupe",
                condition=~models.Q(dedupe_key=""),
            ),
        ]
        indexes = [
            # The publisher's and the sweeper's scan: unpublished rows only.
            models.Index(
                fields=["workspace", "created_at"],
                name="workspace_event_unpublished",
                condition=models.Q(cursor__isnull=True),
            ),
            models.Index(fields=["created_at"], name="workspace_event_created"),
        ]

    def __str__(self) -> str:
        return f"{self.type} #{self.cursor if self.cursor is not None else '…'}"


class EventSequence(models.Model):
    """The last cursor handed out in a workspace; its row lock makes one publisher at a time."""

    workspace = models.OneToOneField(
        "workspaces.Workspace", primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    last_cursor = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.workspace_id}: {self.last_cursor}"


class WebhookEndpoint(models.Model):
    """A URL that receives the workspace's events, signed the Standard Webhooks way."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField("URL", max_length=500)
    description = models.CharField(max_length=200, blank=True, default="")
    event_types = models.JSONField(default=list, help_text="Event types sent to this endpoint.")
    secret = EncryptedTextField(help_text="whsec_…, shown once.")
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=500, blank=True, default="")
    disabled_at = models.DateTimeField(null=True, blank=True)
    # Set by the first failed attempt after a success, cleared by the next success.
    failing_since = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.url


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Delivered"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    """One event on its way to one endpoint: retried with backoff until it succeeds or a day has passed."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="+", db_index=False)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries", db_index=False)
    event = models.ForeignKey(WorkspaceEvent, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # A claim, as the refresh engine's: the queued task must hold it to send.
    lease_token = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["endpoint", "event"], name="webhook_delivery_once")]
        indexes = [
            models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_endpoint"),
            # The sweeper's query: pending deliveries by when they are due.
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_delivery_due",
                condition=models.Q(status="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.endpoint}"


class WebhookAttempt(models.Model):
    """One HTTP request of a delivery, for the delivery log."""

    id = models.BigAutoField(primary_key=True)
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True, default="")
    error = models.CharField(max_length=500, blank=True, default="")
    succeeded = models.BooleanField(default=False)

    class Meta:
        ordering = ["delivery", "number"]

    def __str__(self) -> str:
        return f"Attempt {self.number} of {self.delivery_id}"


class SubscriptionState(models.TextChoices):
    PENDING = "pending", "Pending"
    ACTIVE = "active", "Active"
    FAILED = "failed", "Failed"
    REMOVING = "removing", "Removing"
    INACTIVE = "inactive", "Inactive (connection not connected)"


class ExactSubscription(models.Model):
    """One Exact Online webhook topic chosen for a connection, and its subscription at Exact.

    ``selected`` is the admin's choice; ``state`` says where the subscription
    at Exact stands. A disconnected (or deleted) connection's subscriptions
    are removed with the access token it had (kept encrypted in
    ``removal_token`` until then); a reconnect creates them again.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="+")
    # Kept (without a connection) while a deleted connection's subscription is being removed.
    connection = models.ForeignKey(
        "connections.Connection",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="exact_subscriptions",
    )
    topic = models.CharField(max_length=60)
    selected = models.BooleanField(default=True)
    state = models.CharField(max_length=20, choices=SubscriptionState.choices, default=SubscriptionState.PENDING)
    # Where the subscription exists at Exact (set while it does).
    exact_id = models.CharField("Exact subscription ID", max_length=64, blank=True, default="")
    division = models.CharField(max_length=20, blank=True, default="")
    api_base = models.CharField(max_length=500, blank=True, default="")
    callback_url = models.CharField(max_length=500, blank=True, default="")
    removal_token = EncryptedTextField(blank=True, default="")
    removal_token_expires_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["topic"]
        constraints = [models.UniqueConstraint(fields=["connection", "topic"], name="exact_subscription_topic")]

    def __str__(self) -> str:
        return f"{self.topic} ({self.get_state_display()})"
