"""Small helpers shared by the workspace tests (``assert_error`` is in ``tests/helpers.py``)."""

from datetime import timedelta

from django.utils import timezone

from accounts.models import User
from audit.models import AuditEvent
from workspaces.models import ApiKey, Invitation, Membership, Workspace


def state() -> dict:
    """Everything a workspace change could touch, to prove a refused request changed nothing.

    ``last_used_at`` is left out: authenticating with a key records its use.
    """
    return {
        "users": sorted(User.objects.values_list("email", flat=True)),
        "workspaces": sorted(Workspace.objects.values_list("slug", "name")),
        "memberships": sorted(Membership.objects.values_list("workspace__slug", "user__email", "role")),
        "invitations": sorted((str(i.id), i.email, i.role, i.status) for i in Invitation.objects.all()),
        "api_keys": sorted(ApiKey.objects.values_list("prefix", "name", "revoked_at")),
        "audit_events": AuditEvent.objects.count(),
    }


def expire(invitation: Invitation) -> None:
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(minutes=1))


def key_row(raw: str) -> ApiKey:
    """The stored row of a raw key ``tk_<prefix>_<secret>``."""
    return ApiKey.objects.get(prefix=raw.split("_")[1])
