"""Audit trail: who did what to which object, when and from where."""

from dataclasses import dataclass
from typing import Any

from django.db import models

from common.http import client_ip

from .models import ApiKey, AuditEvent, Workspace


@dataclass(frozen=True)
class Actor:
    """Who is acting: a signed-in user, an API key, or the system (neither)."""

    user: Any = None
    api_key: ApiKey | None = None
    ip: str | None = None

    @classmethod
    def from_request(cls, request) -> "Actor":
        api_key = request.auth if isinstance(getattr(request, "auth", None), ApiKey) else None
        user = request.user if request.user.is_authenticated else None
        return cls(user=user, api_key=api_key, ip=client_ip(request))

    @property
    def label(self) -> str:
        if self.user is not None:
            return self.user.email
        if self.api_key is not None:
            return f"API key {self.api_key.name} (tk_{self.api_key.prefix}_…)"
        return "system"


SYSTEM = Actor()


def audit_record(
    *,
    workspace: Workspace | None,
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
        target_type=target._meta.model_name if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=str(target)[:200] if target is not None else "",
        data=data or {},
        ip_address=actor.ip,
    )
