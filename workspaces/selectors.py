from django.db.models import QuerySet
from django.utils import timezone

from audit.models import AuditEvent
from common.hashing import sha256_hex

from .keys import api_key_matches, parse_api_key_prefix
from .models import ApiKey, Invitation, Membership, Role, Workspace


def workspaces_for_user(*, user) -> QuerySet[Workspace]:
    return Workspace.objects.filter(memberships__user=user).order_by("name")


def memberships_for_user(*, user) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("workspace")


def membership_for(*, user, workspace_slug: str) -> Membership | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.select_related("workspace").filter(user=user, workspace__slug=workspace_slug).first()


def members_list(*, workspace: Workspace) -> QuerySet[Membership]:
    return Membership.objects.filter(workspace=workspace).select_related("user").order_by("created_at")


def member_get(*, workspace: Workspace, membership_id) -> Membership | None:
    return members_list(workspace=workspace).filter(id=membership_id).first()


def admins_count(*, workspace: Workspace) -> int:
    return Membership.objects.filter(workspace=workspace, role=Role.ADMIN).count()


def admin_emails(*, workspace: Workspace) -> list[str]:
    return list(Membership.objects.filter(workspace=workspace, role=Role.ADMIN).values_list("user__email", flat=True))


def invitations_list(*, workspace: Workspace) -> QuerySet[Invitation]:
    return Invitation.objects.filter(workspace=workspace).select_related("invited_by")


def invitations_pending(*, workspace: Workspace) -> QuerySet[Invitation]:
    return invitations_list(workspace=workspace).filter(
        accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now()
    )


def invitation_by_token(*, token: str) -> Invitation | None:
    return Invitation.objects.select_related("workspace").filter(token_hash=sha256_hex(token)).first()


def api_keys_list(*, workspace: Workspace) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(workspace=workspace).select_related("created_by")


def api_key_for_raw(raw: str) -> ApiKey | None:
    """The active key this raw secret belongs to, compared in constant time."""
    prefix = parse_api_key_prefix(raw)
    if prefix is None:
        return None
    key = ApiKey.objects.select_related("workspace").filter(prefix=prefix, revoked_at__isnull=True).first()
    if key is None or not api_key_matches(raw, key.key_hash):
        return None
    return key


def audit_events_list(*, workspace: Workspace) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(workspace=workspace).select_related("actor")
