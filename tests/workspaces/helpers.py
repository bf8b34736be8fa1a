"""Assertions and small helpers shared by the workspace tests."""

from datetime import timedelta

from django.utils import timezone

from accounts.models import User
from audit.models import AuditEvent
from workspaces.models import ApiKey, Invitation, Membership, Workspace


def assert_error(response, status: int, message: str | None = None, code: str | None = None) -> dict:
    """The response is a ``status`` error in the one API error shape; returns the error."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert set(error) <= {"code", "message", "fields"}, error
    if message is not None:
        assert message in error["message"], error
    if code is not None:
        assert error["code"] == code, error
    return error


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
