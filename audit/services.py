"""Audit trail: who did what to which object, when and from where.

Every app records its changes here (``audit_record``, inside the transaction
that made the change), so this app imports none of them.
"""

from dataclasses import dataclass
from typing import Any

from django.db import models

from common.http import client_ip

from .models import AuditEvent


def _api_key_of(request) -> Any:
    """The API key a request authenticated with, if any.

    DRF puts it in ``request.auth`` (sessions leave ``None`` there; plain
    Django requests have no ``auth``). The key's class is the one the audit
    row points at, so audit needs no import of ``workspaces``.
    """
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, AuditEvent.actor_api_key.field.related_model) else None


# What a workspace sees as the actor of a staff action in the Django admin.
STAFF_LABEL = "Tokenkeeper support"


@dataclass(frozen=True)
class Actor:
    """Who is acting: a signed-in user, an API key, or the system (neither).

    ``staff``: a Tokenkeeper staff member acting in the Django admin. The user
    is stored on the audit row, but the label every workspace sees is
    ``STAFF_LABEL``; only superusers see which person it was.
    """

    user: Any = None
    api_key: Any = None
    ip: str | None = None
    staff: bool = False

    @classmethod
    def from_request(cls, request) -> "Actor":
        user = request.user if request.user.is_authenticated else None
        return cls(user=user, api_key=_api_key_of(request), ip=client_ip(request))

    @classmethod
    def staff_from_request(cls, request) -> "Actor":
        """The staff member behind a Django admin request."""
        return cls(user=request.user, ip=client_ip(request), staff=True)

    @property
    def label(self) -> str:
        if self.staff:
            return STAFF_LABEL
        if self.user is not None:
            return self.user.email
        if self.api_key is not None:
            return f"API key {self.api_key.name} (tk_{self.api_key.prefix}_…)"
        return "system"


SYSTEM = Actor()


def audit_record(
    *,
    workspace: models.Model | None,
    actor: Actor,
    action: str,
    target: models.Model | None = None,
    data: dict | None = None,
) -> AuditEvent:
    """Write one audit row; call it inside the transaction that made the change."""
    return AuditEvent.objects.create(
        workspace=workspace,
        action=action,
        actor=actor.user,
        actor_api_key=actor.api_key,
        actor_label=actor.label,
        by_staff=actor.staff,
        target_type=target._meta.model_name if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=str(target)[:200] if target is not None else "",
        data=data or {},
        ip_address=actor.ip,
    )
