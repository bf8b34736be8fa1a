"""Writes for workspaces, memberships, invitations and API keys.

Every function takes the tenant explicitly, runs in one transaction, writes an
audit event for the change and raises ServiceError (changing nothing) when a
rule refuses it.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email, validate_slug
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.text import slugify

from audit.models import AuditEvent
from audit.services import Actor, audit_record
from common.errors import ServiceError, UnavailableError, clean_name, refuse_control_characters

from . import keycache
from .keys import new_api_key, new_invitation_token
from .models import ApiKey, Invitation, Membership, Role, Scope, Workspace
from .selectors import admins_count, invitation_by_token, invitations_pending

logger = logging.getLogger(__name__)

RESERVED_SLUGS = {"new", "admin", "api", "static", "accounts", "invitations"}


# --- Workspaces -------------------------------------------------------------------


def _clean_name(name: str) -> str:
    return clean_name(name, empty_message="Give the workspace a name.")


def _unique_slug_from(name: str) -> str:
    base = slugify(name)[:40] or "workspace"
    slug, n = base, 1
    while slug in RESERVED_SLUGS or Workspace.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def _validate_slug(slug: str) -> str:
    slug = slug.strip().lower()
    try:
        validate_slug(slug)
    except ValidationError:
        raise ServiceError(
            "Use only lower-case letters, digits, hyphens and underscores in the slug.", field="slug"
        ) from None
    if len(slug) > 50:
        raise ServiceError("The slug can be at most 50 characters.", field="slug")
    if slug in RESERVED_SLUGS:
        raise ServiceError(f"The slug “{slug}” is reserved; choose another.", field="slug")
    if Workspace.objects.filter(slug=slug).exists():
        raise ServiceError(f"The slug “{slug}” is already taken; choose another.", field="slug")
    return slug


@transaction.atomic
def workspace_create(*, user, name: str, slug: str = "", actor: Actor) -> Workspace:
    """Create a workspace; its creator becomes its first admin."""
    name = _clean_name(name)
    slug = _validate_slug(slug) if slug else _unique_slug_from(name)
    try:
        with transaction.atomic():
            workspace = Workspace.objects.create(name=name, slug=slug, created_by=user)
    except IntegrityError:
        raise ServiceError(f"The slug “{slug}” is already taken; choose another.", field="slug") from None
    membership = Membership.objects.create(workspace=workspace, user=user, role=Role.ADMIN)
    audit_record(
        workspace=workspace,
        actor=actor,
        action="workspace.created",
        target=workspace,
        data={"name": name, "slug": slug},
    )
    audit_record(
        workspace=workspace,
        actor=actor,
        action="member.added",
        target=membership,
        data={"email": user.email, "role": Role.ADMIN},
    )
    return workspace


@transaction.atomic
def workspace_rename(*, workspace: Workspace, name: str, actor: Actor) -> Workspace:
    name = _clean_name(name)
    old = workspace.name
    if name == old:
        return workspace
    workspace.name = name
    workspace.save(update_fields=["name"])
    audit_record(
        workspace=workspace, actor=actor, action="workspace.renamed", target=workspace, data={"from": old, "to": name}
    )
    return workspace


# --- Members --------------------------------------------------------------------------


def _lock_workspace(workspace: Workspace) -> None:
    """Serialise membership changes so two admins cannot both step down at once."""
    Workspace.objects.select_for_update().filter(pk=workspace.pk).first()


def _ensure_valid_role(role: str) -> str:
    if role not in Role.values:
        raise ServiceError(f"Choose a role: {', '.join(Role.values)}.", field="role")
    return role


@transaction.atomic
def membership_change_role(*, workspace: Workspace, membership: Membership, role: str, actor: Actor) -> Membership:
    _ensure_valid_role(role)
    _lock_workspace(workspace)
    membership.refresh_from_db()
    if membership.workspace_id != workspace.id:
        raise ServiceError("That person is not a member of this workspace.")
    if membership.role == role:
        return membership
    if membership.role == Role.ADMIN and admins_count(workspace=workspace) <= 1:
        raise ServiceError(
            "The last admin cannot be demoted; make someone else admin first.", field="role", code="last_admin"
        )
    old = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        workspace=workspace,
        actor=actor,
        action="member.role_changed",
        target=membership,
        data={"email": membership.user.email, "from": old, "to": role},
    )
    return membership


@transaction.atomic
def membership_remove(
    *, workspace: Workspace, membership: Membership, actor: Actor, action: str = "member.removed"
) -> None:
    _lock_workspace(workspace)
    membership.refresh_from_db()
    if membership.workspace_id != workspace.id:
        raise ServiceError("That person is not a member of this workspace.")
    if membership.role == Role.ADMIN and admins_count(workspace=workspace) <= 1:
        raise ServiceError(
            "The last admin cannot leave or be removed; make someone else admin first.", code="last_admin"
        )
    audit_record(
        workspace=workspace,
        actor=actor,
        action=action,
        target=membership,
        data={"email": membership.user.email, "role": membership.role},
    )
    membership.delete()


def membership_leave(*, workspace: Workspace, user, actor: Actor) -> None:
    membership = Membership.objects.filter(workspace=workspace, user=user).first()
    if membership is None:
        raise ServiceError("You are not a member of this workspace.")
    membership_remove(workspace=workspace, membership=membership, actor=actor, action="member.left")


# --- Invitations --------------------------------------------------------------------------


def invitation_accept_url(token: str) -> str:
    return f"{settings.PUBLIC_BASE_URL}/invitations/{token}/"


def _clean_email(email: str | None) -> str:
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise ServiceError("Enter a valid e-mail address.", field="email") from None
    # validate_email lets no line break through today; the address goes into a mail header.
    return refuse_control_characters(email, field="email")


@transaction.atomic
def invitation_create(*, workspace: Workspace, email: str, role: str, actor: Actor) -> tuple[Invitation, str]:
    """Invite someone by e-mail. Returns the invitation and its one-time token."""
    email = _clean_email(email)
    _ensure_valid_role(role)
    if Membership.objects.filter(workspace=workspace, user__email__iexact=email).exists():
        raise ServiceError(f"{email} is already a member of this workspace.", field="email")
    pending = Invitation.objects.filter(
        workspace=workspace,
        email__iexact=email,
        accepted_at__isnull=True,
        revoked_at__isnull=True,
        expires_at__gt=timezone.now(),
    )
    if pending.exists():
        raise ServiceError(
            f"{email} already has a pending invitation; resend it, or withdraw it to invite again.",
            field="email",
        )
    raw, token_hash = new_invitation_token()
    invitation = Invitation.objects.create(
        workspace=workspace,
        email=email,
        role=role,
        token_hash=token_hash,
        invited_by=actor.user,
        expires_at=timezone.now() + timedelta(days=settings.INVITATION_LIFETIME_DAYS),
    )
    audit_record(
        workspace=workspace,
        actor=actor,
        action="invitation.created",
        target=invitation,
        data={"email": email, "role": role},
    )
    url = invitation_accept_url(raw)
    transaction.on_commit(lambda: _deliver_invitation(invitation, url, actor))
    return invitation, raw


def _deliver_invitation(invitation: Invitation, url: str, actor: Actor) -> None:
    """Send the e-mail once the invitation is committed; if sending fails, withdraw it and say so.

    Runs after the commit, so it raises out of ``invitation_create``: the
    caller gets an UnavailableError and no invitation is left that nobody was told about.
    """
    try:
        _send_invitation_email(invitation, url, actor)
    except (OSError, ValueError) as exc:  # SMTP and network errors (OSError), bad headers (ValueError)
        logger.warning("Invitation e-mail for workspace %s failed: %s", invitation.workspace.slug, exc)
        _invitation_withdraw_undelivered(invitation, actor, reason=type(exc).__name__)
        raise UnavailableError(
            f"The invitation e-mail to {invitation.email} could not be sent, so no invitation was made. "
            "Try again later; if it keeps failing, the e-mail settings of Tokenkeeper need a look.",
            code="email_failed",
        ) from None


@transaction.atomic
def _invitation_withdraw_undelivered(invitation: Invitation, actor: Actor, *, reason: str) -> None:
    audit_record(
        workspace=invitation.workspace,
        actor=actor,
        action="invitation.email_failed",
        target=invitation,
        data={"email": invitation.email, "error": reason, "withdrawn": True},
    )
    Invitation.objects.filter(pk=invitation.pk).delete()


def _send_invitation_email(invitation: Invitation, url: str, actor: Actor) -> None:
    context = {"invitation": invitation, "url": url, "inviter": actor.label, "base_url": settings.PUBLIC_BASE_URL}
    workspace_name = " ".join(invitation.workspace.name.split())  # one header line, even for an old name
    send_mail(
        subject=f"[Tokenkeeper] You are invited to {workspace_name}",
        message=render_to_string("workspaces/email/invitation.txt", context),
        from_email=None,
        recipient_list=[invitation.email],
    )


RESEND_SPACING = timedelta(minutes=1)
RESENDS_PER_DAY = 5


def _refuse_resend_too_soon(invitation: Invitation) -> None:
    now = timezone.now()
    sent = list(
        AuditEvent.objects.filter(
            workspace=invitation.workspace,
            action__in=("invitation.created", "invitation.resent"),
            target_id=str(invitation.pk),
            created_at__gte=now - timedelta(days=1),
        ).values_list("action", "created_at")
    )
    last = max((at for _, at in sent), default=invitation.created_at)
    if now - last < RESEND_SPACING:
        raise ServiceError("The invitation was sent less than a minute ago; wait a moment before resending it.")
    if sum(1 for action, _ in sent if action == "invitation.resent") >= RESENDS_PER_DAY:
        raise ServiceError(
            f"This invitation was resent {RESENDS_PER_DAY} times in the last 24 hours; try again tomorrow, "
            "or check the address."
        )


@transaction.atomic
def invitation_revoke(*, workspace: Workspace, invitation: Invitation, actor: Actor) -> Invitation:
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk, workspace=workspace)
    if invitation.status != "pending":
        raise ServiceError(f"This invitation is already {invitation.status}.")
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    audit_record(
        workspace=workspace,
        actor=actor,
        action="invitation.revoked",
        target=invitation,
        data={"email": invitation.email},
    )
    return invitation


@transaction.atomic
def invitation_resend(*, workspace: Workspace, invitation: Invitation, actor: Actor) -> tuple[Invitation, str]:
    """E-mail a pending or expired invitation again, with a new link and a new expiry.

    Only the token's hash is stored, so the old link cannot be sent again: a
    new token replaces it (the old link stops working: one live link per
    invitation, still single-use). The e-mail goes out before the commit, so
    if sending fails nothing changes and the old link keeps working. Returns
    the invitation and its new one-time token. At most ``RESENDS_PER_DAY``
    resends in 24 hours and one a minute (counted from the audit trail), so a
    double click or a script cannot flood someone's inbox.
    """
    invitation = (
        Invitation.objects.select_for_update(of=("self",))
        .select_related("workspace", "invited_by")
        .get(pk=invitation.pk, workspace=workspace)
    )
    if invitation.status in ("accepted", "revoked"):
        raise ServiceError(f"This invitation is already {invitation.status}; send a new invitation instead.")
    if Membership.objects.filter(workspace=workspace, user__email__iexact=invitation.email).exists():
        raise ServiceError(f"{invitation.email} is already a member of this workspace.")
    others = invitations_pending(workspace=workspace).filter(email__iexact=invitation.email).exclude(pk=invitation.pk)
    if others.exists():
        raise ServiceError(f"{invitation.email} has another pending invitation; resend that one.")
    _refuse_resend_too_soon(invitation)
    raw, invitation.token_hash = new_invitation_token()
    invitation.expires_at = timezone.now() + timedelta(days=settings.INVITATION_LIFETIME_DAYS)
    invitation.save(update_fields=["token_hash", "expires_at"])
    audit_record(
        workspace=workspace,
        actor=actor,
        action="invitation.resent",
        target=invitation,
        data={"email": invitation.email, "expires_at": invitation.expires_at.isoformat()},
    )
    inviter = Actor(user=invitation.invited_by) if invitation.invited_by else actor
    try:
        _send_invitation_email(invitation, invitation_accept_url(raw), inviter)
    except (OSError, ValueError) as exc:  # raised inside the transaction: the new link is rolled back
        logger.warning("Invitation e-mail for workspace %s failed: %s", workspace.slug, exc)
        raise UnavailableError(
            f"The invitation e-mail to {invitation.email} could not be sent; the invitation is unchanged and the "
            "earlier link still works. Try again later.",
            code="email_failed",
        ) from None
    return invitation, raw


def invitation_problem(invitation: Invitation | None, user=None) -> str | None:
    """Why this invitation cannot be accepted (by this user), or None."""
    if invitation is None:
        return "This invitation link is not valid. Ask for a new invitation."
    messages = {
        "accepted": "This invitation has already been used.",
        "revoked": "This invitation was withdrawn. Ask for a new invitation.",
        "expired": "This invitation has expired. Ask for a new invitation.",
    }
    if invitation.status in messages:
        return messages[invitation.status]
    if user is not None and user.email.lower() != invitation.email.lower():
        return (
            f"This invitation is for {invitation.email}, but you are signed in as {user.email}. "
            "Sign in with the invited address to accept it."
        )
    return None


@transaction.atomic
def invitation_accept(*, token: str, user, actor: Actor) -> Membership:
    invitation = invitation_by_token(token=token)
    if invitation is not None:
        invitation = Invitation.objects.select_for_update().select_related("workspace").get(pk=invitation.pk)
    problem = invitation_problem(invitation, user)
    if problem:
        raise ServiceError(problem, code="invitation_unusable")
    workspace = invitation.workspace
    membership, created = Membership.objects.get_or_create(
        workspace=workspace, user=user, defaults={"role": invitation.role}
    )
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    audit_record(
        workspace=workspace,
        actor=actor,
        action="invitation.accepted",
        target=invitation,
        data={"email": invitation.email},
    )
    if created:
        audit_record(
            workspace=workspace,
            actor=actor,
            action="member.added",
            target=membership,
            data={"email": user.email, "role": membership.role},
        )
    return membership


def invitations_purge_expired(*, older_than_days: int = 30) -> int:
    """Delete invitations that expired long ago (their audit trail stays)."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted, _ = Invitation.objects.filter(accepted_at__isnull=True, expires_at__lt=cutoff).delete()
    return deleted


# --- API keys --------------------------------------------------------------------------------


@transaction.atomic
def api_key_create(*, workspace: Workspace, name: str, scopes: list[str], actor: Actor) -> tuple[ApiKey, str]:
    """Create a key. Returns it with the raw secret, which is never retrievable again."""
    name = clean_name(name, empty_message="Give the key a name that says what uses it.")
    scopes = sorted(set(scopes or []))
    unknown = [s for s in scopes if s not in Scope.values]
    if not scopes or unknown:
        raise ServiceError(f"Choose one or more scopes from: {', '.join(Scope.values)}.", field="scopes")
    _lock_workspace(workspace)  # two requests with the same name: the second sees the first
    if ApiKey.objects.filter(workspace=workspace, name__iexact=name, revoked_at__isnull=True).exists():
        raise ServiceError(
            f"This workspace already has an active key named “{name}”; choose another name, or revoke that key first.",
            field="name",
            code="duplicate_name",
        )
    raw, prefix, key_hash = new_api_key()
    key = ApiKey.objects.create(
        workspace=workspace, name=name, prefix=prefix, key_hash=key_hash, scopes=scopes, created_by=actor.user
    )
    audit_record(
        workspace=workspace, actor=actor, action="api_key.created", target=key, data={"name": name, "scopes": scopes}
    )
    return key, raw


@transaction.atomic
def api_key_revoke(*, workspace: Workspace, api_key: ApiKey, actor: Actor) -> ApiKey:
    api_key = ApiKey.objects.select_for_update().get(pk=api_key.pk, workspace=workspace)
    if api_key.revoked_at:
        raise ServiceError("This key is already revoked.")
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["revoked_at"])
    # Other processes stop accepting it when their entry expires (API_KEY_CACHE_SECONDS).
    keycache.forget(api_key.prefix)
    audit_record(
        workspace=workspace, actor=actor, action="api_key.revoked", target=api_key, data={"name": api_key.name}
    )
    return api_key


API_KEY_TOUCH_SECONDS = 60


def api_key_touch(api_key: ApiKey) -> None:
    """Record last use, at most once a minute per key and process to keep reads cheap.

    The UPDATE is conditional, so when several processes see the same key in
    the same minute only the first one writes the row.
    """
    now = timezone.now()
    if api_key.last_used_at and now - api_key.last_used_at < timedelta(seconds=API_KEY_TOUCH_SECONDS):
        return
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - timedelta(seconds=API_KEY_TOUCH_SECONDS))
    ApiKey.objects.filter(stale, pk=api_key.pk).update(last_used_at=now)
    api_key.last_used_at = now
