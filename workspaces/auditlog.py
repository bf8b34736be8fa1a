"""The audit log as people read it: "API key created", "scopes: read, tokens", not codes and Python lists."""

from dataclasses import dataclass
from datetime import UTC, datetime

from audit.models import AuditEvent

ACTIONS = {
    "workspace.created": "Workspace created",
    "workspace.renamed": "Workspace renamed",
    "member.added": "Member added",
    "member.removed": "Member removed",
    "member.left": "Member left",
    "member.role_changed": "Role changed",
    "invitation.created": "Invitation sent",
    "invitation.resent": "Invitation sent again",
    "invitation.accepted": "Invitation accepted",
    "invitation.revoked": "Invitation withdrawn",
    "invitation.email_failed": "Invitation e-mail failed",
    "api_key.created": "API key created",
    "api_key.revoked": "API key revoked",
    "oauth_client.created": "OAuth client registered",
    "oauth_client.updated": "OAuth client changed",
    "oauth_client.secret_replaced": "OAuth client secret replaced",
    "oauth_client.deleted": "OAuth client deleted",
    "connection.created": "Connection created",
    "connection.authorized": "Connection authorized",
    "connection.reconnected": "Connection reconnected",
    "connection.recovered": "Connection works again",
    "connection.renamed": "Connection renamed",
    "connection.revoked": "Connection disconnected",
    "connection.deleted": "Connection deleted",
    "connection.needs_reauth": "Connection needs re-authorization",
    "connection.marked_needs_reauth": "Connection marked for re-authorization",
    "connection.refresh_forced": "Refreshed by hand",
    "connection.refresh_requested": "Refresh requested",
    "connection.connect_link_created": "Connect link created",
}
KEYS = {"email": "e-mail", "oauth_client": "OAuth client", "refresh_at": "refresh at", "expires_at": "expires"}


@dataclass(frozen=True)
class AuditRow:
    event: AuditEvent
    label: str
    details: list[tuple[str, str]]


def action_label(action: str) -> str:
    """A readable name for an action code; unknown codes (other apps, staff) read as words."""
    if action in ACTIONS:
        return ACTIONS[action]
    subject, _, verb = action.partition(".")
    if subject == "staff":
        return f"Staff: {verb.replace('_', ' ')}"
    words = f"{subject.replace('_', ' ')} {verb.replace('_', ' ')}".strip()
    return words[:1].upper() + words[1:]


def show_value(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None or value == "":
        return "—"
    if isinstance(value, list | tuple):
        return ", ".join(show_value(item) for item in value) or "—"
    if isinstance(value, dict):
        return "; ".join(f"{k.replace('_', ' ')}: {show_value(v)}" for k, v in value.items())
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and "T" in value:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
        if moment.tzinfo is not None:
            return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    return str(value)


def audit_row(event: AuditEvent) -> AuditRow:
    details = [(KEYS.get(key, key.replace("_", " ")), show_value(value)) for key, value in (event.data or {}).items()]
    return AuditRow(event=event, label=action_label(event.action), details=details)
