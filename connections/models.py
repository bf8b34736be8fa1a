import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from common.crypto import EncryptedTextField


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    ACTIVE = "active", "Active"
    REFRESH_FAILING = "refresh_failing", "Refresh failing"
    NEEDS_REAUTH = "needs_reauth", "Needs re-authorization"
    REVOKED = "revoked", "Revoked"


class Connection(models.Model):
    """One authorized account at a provider, made through exactly one OAuth client."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Indexed by connection_workspace_status (workspace first): every index is
    # written on each refresh, so none is kept twice.
    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="connections", db_index=False
    )
    oauth_client = models.ForeignKey("oauthclients.OAuthClient", on_delete=models.CASCADE, related_name="connections")
    name = models.CharField(max_length=100)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="connections"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)

    access_token = EncryptedTextField(blank=True, default="")
    refresh_token = EncryptedTextField(blank=True, default="")
    token_type = models.CharField(max_length=40, blank=True, default="")
    granted_scopes = models.CharField(max_length=1000, blank=True, default="")
    access_token_expires_at = models.DateTimeField(null=True, blank=True)
    access_token_lifetime = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds, as last issued.")
    refresh_token_expires_at = models.DateTimeField(null=True, blank=True)

    account_id = models.CharField(max_length=255, blank=True, default="")
    account_name = models.CharField(max_length=255, blank=True, default="")
    account_email = models.CharField(max_length=255, blank=True, default="")
    account_details = models.JSONField(default=dict, blank=True)
    # Exact Online's division number, copied from ``account_details["Division"]``
    # when the identity is stored: support searches by it, and a JSON key is
    # not indexed (connection_account_division is).
    account_division = models.BigIntegerField(null=True, blank=True)

    # Refresh engine bookkeeping: when the next refresh is due, who holds the
    # claim on it (a lease written by the sweeper), and how it has gone.
    refresh_due_at = models.DateTimeField(null=True, blank=True)
    lease_token = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    interrupted_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Set when a claim ran out before its refresh finished (worker stopped mid-refresh).",
    )
    refresh_failures = models.PositiveIntegerField(default=0)
    last_refreshed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    last_error_at = models.DateTimeField(null=True, blank=True)
    # Token-endpoint requests on ``token_calls_date`` (UTC), successes and
    # failures: providers cap them per day (Exact Online: 200 per user).
    token_calls_date = models.DateField(null=True, blank=True)
    token_calls = models.PositiveIntegerField(default=0)
    # Support paused refreshing: no refresh_due_at while set, so the sweeper
    # (which reads only rows with one, through connection_refresh_due) never
    # sees it; the token API serves a still-valid token and refreshes nothing.
    refresh_paused_at = models.DateTimeField(null=True, blank=True)

    connected_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [
            # The sweeper's query: due refreshes only, so its cost follows the
            # number due, not the number stored.
            models.Index(
                fields=["refresh_due_at"],
                name="connection_refresh_due",
                condition=models.Q(refresh_due_at__isnull=False),
            ),
            models.Index(fields=["workspace", "status"], name="connection_workspace_status"),
            # Support's search by Exact division number (Exact connections only).
            models.Index(
                fields=["account_division"],
                name="connection_account_division",
                condition=models.Q(account_division__isnull=False),
            ),
        ]
        permissions = [("support_connection", "Can run support actions on connections")]

    def __str__(self) -> str:
        return self.name

    @property
    def has_tokens(self) -> bool:
        return bool(self.access_token)

    @property
    def token_calls_today(self) -> int:
        """Token-endpoint requests so far this UTC day."""
        return self.token_calls if self.token_calls_date == timezone.now().date() else 0

    def count_token_call(self) -> None:
        """One more token-endpoint request today (saved with the row)."""
        today = timezone.now().date()
        self.token_calls = self.token_calls + 1 if self.token_calls_date == today else 1
        self.token_calls_date = today


class ConnectionSearchText(models.Model):
    """What support finds a connection by: its name, account name and account e-mail, lower-cased.

    A narrow table of its own with a trigram index (PostgreSQL; ``LIKE
    '%…%'`` uses it), kept by database triggers on ``connections_connection``
    that fire only when one of those three columns changes (migration 0006).
    Not an index on the connections table itself: every refresh writes a new
    row version there, and with it an entry in each of its indexes.
    """

    connection_id = models.UUIDField(primary_key=True)
    text = models.TextField()

    def __str__(self) -> str:
        return self.text


class EventKind(models.TextChoices):
    CREATED = "created", "Created"
    AUTHORIZED = "authorized", "Authorized"
    RECONNECTED = "reconnected", "Reconnected"
    AUTHORIZATION_FAILED = "authorization_failed", "Authorization failed"
    REFRESHED = "refreshed", "Refreshed"
    REFRESH_FAILED = "refresh_failed", "Refresh failed"
    REFRESH_DEFERRED = "refresh_deferred", "Refresh postponed"
    NEEDS_REAUTH = "needs_reauth", "Needs re-authorization"
    RECOVERED = "recovered", "Recovered"
    REVOKED = "revoked", "Revoked"
    REFRESH_PAUSED = "refresh_paused", "Refreshing paused"
    REFRESH_RESUMED = "refresh_resumed", "Refreshing resumed"
    REAUTH_EMAIL_SENT = "reauth_email_sent", "Re-authorization e-mail sent again"


class ConnectionEvent(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Indexed by connection_event_time (connection first).
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="events", db_index=False)
    kind = models.CharField(max_length=30, choices=EventKind.choices)
    detail = models.TextField(blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["connection", "-created_at"], name="connection_event_time"),
            # The retention purge's scan, oldest first (connections.events.connection_events_purge).
            models.Index(fields=["created_at"], name="connection_event_created"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.created_at:%Y-%m-%d %H:%M:%S}"


class AuthorizationState(models.Model):
    """One authorization-code flow in progress.

    ``state`` is stored as a hash, single-use, expires after 10 minutes and is
    bound to the browser session that started the flow. The PKCE verifier
    stays server-side, encrypted.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="authorization_states")
    state_hash = models.CharField(max_length=64, unique=True)
    session_binding = models.CharField(max_length=64, help_text="Hash of a random value kept in the browser session.")
    code_verifier = EncryptedTextField(blank=True, default="")
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Authorization of {self.connection_id} started {self.created_at:%Y-%m-%d %H:%M:%S}"


class ConnectLink(models.Model):
    """A single-use, short-lived Tokenkeeper URL that starts a flow in any browser (API-started flows)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="connect_links")
    token_hash = models.CharField(max_length=64, unique=True)
    created_by_label = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Connect link for {self.connection_id}"
