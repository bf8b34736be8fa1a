import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditEvent(models.Model):
    """Who did what to which object, when and from where.

    The table keeps the name it had when the model lived in ``workspaces``.
    The workspace and API key are referred to by name: audit sits below
    ``workspaces`` and never imports it.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(
        "workspaces.Workspace", null=True, blank=True, on_delete=models.CASCADE, related_name="audit_events"
    )
    action = models.CharField(max_length=64)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_api_key = models.ForeignKey(
        "workspaces.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=200, blank=True)
    # A staff action in the Django admin: ``actor`` is the staff member, whom
    # only superusers see; everyone else sees ``actor_label`` ("Tokenkeeper support").
    by_staff = models.BooleanField(default=False)
    target_type = models.CharField(max_length=50, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=200, blank=True)
    data = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        db_table = "workspaces_auditevent"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["workspace", "-created_at"], name="audit_workspace_time"),
            # A connection's (any object's) audit trail, from its support page.
            models.Index(fields=["target_id", "-created_at"], name="audit_target_time"),
        ]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_label or 'system'}"

    @property
    def public_ip_address(self) -> str | None:
        """The address a workspace sees: none for a staff action (it would point at the person)."""
        return None if self.by_staff else self.ip_address
