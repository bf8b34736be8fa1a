"""Request data and stored state shared by the OAuth client tests (``assert_error`` is in ``tests/helpers.py``)."""

from audit.models import AuditEvent
from connections.models import Connection
from oauthclients.models import OAuthClient


def clients_url(workspace: str = "acme") -> str:
    return f"/api/v1/workspaces/{workspace}/oauth-clients/"


def client_url(client, workspace: str = "acme") -> str:
    return f"{clients_url(workspace)}{client.id}/"


def exact_body(**overrides) -> dict:
    """What the issue's admin types for Exact Online (site nl)."""
    return {
        "provider": "exact_online",
        "name": "Exact Online Production",
        "client_id": "0f4e7c1a-exact",
        "client_secret": "typed-in-secret-Qp7dE2",
        "access_token_expires_in": 3599999,
        "refresh_token_expires_in": 7775999999,
        **overrides,
    }


def generic_body(**overrides) -> dict:
    return {
        "provider": "generic",
        "name": "Acme CRM",
        "client_id": "crm-client",
        "client_secret": "typed-in-secret-Qp7dE2",
        "authorization_url": "https://login.example.com/oauth/authorize",
        "token_url": "https://login.example.com/oauth/token",
        "access_token_expires_in": 3600000,
        "refresh_token_expires_in": 0,
        **overrides,
    }


def stored() -> list[tuple]:
    """Every stored client, with its secrets, and the audit trail length: to prove nothing changed."""
    clients = sorted(
        (
            str(c.id),
            c.workspace.slug,
            c.provider,
            c.site,
            c.name,
            c.client_id,
            str(c.client_secret),
            str(c.webhook_secret),
            c.authorization_url,
            c.token_url,
            c.scopes,
            c.access_token_expires_in,
            c.refresh_token_expires_in,
            c.token_endpoint_auth_method,
            c.use_pkce,
            c.api_base_url,
            c.identity_url,
        )
        for c in OAuthClient.objects.select_related("workspace")
    )
    connections = sorted(Connection.objects.values_list("id", "status"))
    return [*clients, ("connections", connections), ("audit events", AuditEvent.objects.count())]


def audit_events(action: str, target=None) -> list[AuditEvent]:
    events = AuditEvent.objects.filter(action=action)
    if target is not None:
        events = events.filter(target_id=str(target.pk))
    return list(events)
