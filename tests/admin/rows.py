"""Rows of every model that has an admin screen, made in bulk for the admin tests.

``make_rows(model, n)`` adds ``n`` rows of ``model``, each with parents of its
own (its own workspace, user, client …), so that a list page that fetches a
parent per row shows it in its query count. A model registered in the admin
without a maker here fails ``tests/admin/test_list_queries.py``: add one (one
small function).
"""

import itertools
from datetime import timedelta

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.utils import timezone

from accounts.models import User
from audit.models import AuditEvent
from common import crypto
from connections.models import Connection, ConnectionEvent, EventKind, Status
from integrations.models import (
    DeliveryStatus,
    EventType,
    ExactSubscription,
    SubscriptionState,
    WebhookDelivery,
    WebhookEndpoint,
    WorkspaceEvent,
)
from oauthclients.models import OAuthClient
from workspaces.models import ApiKey, Invitation, Membership, Role, Workspace

_serial = itertools.count(1)
_PASSWORD = None


def _tags(n: int) -> list[int]:
    return [next(_serial) for _ in range(n)]


def users(n: int) -> list[User]:
    global _PASSWORD
    _PASSWORD = _PASSWORD or make_password("a pass phrase for rows")
    return User.objects.bulk_create(
        [User(email=f"row{tag}@example.com", name=f"Row {tag}", password=_PASSWORD) for tag in _tags(n)]
    )


def workspaces(n: int) -> list[Workspace]:
    creators = users(n)
    tags = _tags(n)
    return Workspace.objects.bulk_create(
        [
            Workspace(name=f"Row workspace {t}", slug=f"row-{t}", created_by=u)
            for t, u in zip(tags, creators, strict=True)
        ]
    )


def memberships(n: int) -> list[Membership]:
    pairs = zip(workspaces(n), users(n), strict=True)
    return Membership.objects.bulk_create([Membership(workspace=w, user=u, role=Role.ADMIN) for w, u in pairs])


def invitations(n: int) -> list[Invitation]:
    later = timezone.now() + timedelta(days=7)
    return Invitation.objects.bulk_create(
        [
            Invitation(
                workspace=w,
                email=f"invitee{t}@example.com",
                token_hash=f"{t:064d}",
                invited_by=w.created_by,
                expires_at=later,
            )
            for t, w in zip(_tags(n), workspaces(n), strict=True)
        ]
    )


def api_keys(n: int) -> list[ApiKey]:
    return ApiKey.objects.bulk_create(
        [
            ApiKey(
                workspace=w,
                name=f"Key {t}",
                prefix=f"{t:012x}",
                key_hash=f"{t:064x}",
                scopes=["read"],
                created_by=w.created_by,
            )
            for t, w in zip(_tags(n), workspaces(n), strict=True)
        ]
    )


def oauth_clients(n: int) -> list[OAuthClient]:
    return OAuthClient.objects.bulk_create(
        [
            OAuthClient(
                workspace=w,
                provider="exact_online",
                site="nl",
                name=f"Client {t}",
                client_id=f"client-{t}",
                client_secret=f"row-client-secret-{t}",
                authorization_url="https://start.exactonline.nl/api/oauth2/auth",
                token_url="https://start.exactonline.nl/api/oauth2/token",
                access_token_expires_in=599_999,
            )
            for t, w in zip(_tags(n), workspaces(n), strict=True)
        ]
    )


def connections(n: int) -> list[Connection]:
    now = timezone.now()
    return Connection.objects.bulk_create(
        [
            Connection(
                workspace=c.workspace,
                oauth_client=c,
                owner=c.workspace.created_by,
                name=f"Connection {t}",
                status=Status.REFRESH_FAILING,
                access_token=f"row-access-{t}",
                refresh_token=f"row-refresh-{t}",
                access_token_expires_at=now + timedelta(minutes=5),
                refresh_due_at=now + timedelta(minutes=4),
                account_name=f"Account {t}",
                account_division=100_000 + t,
                account_details={"Division": 100_000 + t},
                refresh_failures=2,
                last_error="The provider answered HTTP 503 (temporarily_unavailable).",
                token_calls=3,
                token_calls_date=now.date(),
            )
            for t, c in zip(_tags(n), oauth_clients(n), strict=True)
        ]
    )


def connection_events(n: int) -> list[ConnectionEvent]:
    return ConnectionEvent.objects.bulk_create(
        [
            ConnectionEvent(connection=c, kind=EventKind.REFRESH_FAILED, detail="HTTP 503", data={"status": 503})
            for c in connections(n)
        ]
    )


def audit_events(n: int) -> list[AuditEvent]:
    return AuditEvent.objects.bulk_create(
        [
            AuditEvent(
                workspace=w,
                action="connection.refresh_forced",
                actor=w.created_by,
                actor_label="Tokenkeeper support",
                by_staff=True,
                target_id=str(t),
                target_label=f"Target {t}",
            )
            for t, w in zip(_tags(n), workspaces(n), strict=True)
        ]
    )


def email_addresses(n: int) -> list[EmailAddress]:
    return EmailAddress.objects.bulk_create(
        [EmailAddress(user=u, email=u.email, verified=True, primary=True) for u in users(n)]
    )


def groups(n: int) -> list[Group]:
    return Group.objects.bulk_create([Group(name=f"Group {t}") for t in _tags(n)])


def authenticators(n: int) -> list[Authenticator]:
    return Authenticator.objects.bulk_create(
        [Authenticator(user=u, type="totp", data={"secret": crypto.encrypt("JBSWY3DPEHPK3PXP")}) for u in users(n)]
    )


def workspace_events(n: int) -> list[WorkspaceEvent]:
    return WorkspaceEvent.objects.bulk_create(
        [
            WorkspaceEvent(
                workspace=c.workspace,
                connection=c,
                cursor=1,
                type=EventType.CONNECTION_REFRESH_FAILED,
                data={"status": 503},
                published_at=c.created_at,
            )
            for c in connections(n)
        ]
    )


def webhook_endpoints(n: int) -> list[WebhookEndpoint]:
    return WebhookEndpoint.objects.bulk_create(
        [
            WebhookEndpoint(
                workspace=w,
                url=f"https://hooks.example.com/{t}",
                event_types=[EventType.CONNECTION_REFRESH_FAILED],
                secret=f"whsec_row{t}",
                created_by=w.created_by,
            )
            for t, w in zip(_tags(n), workspaces(n), strict=True)
        ]
    )


def webhook_deliveries(n: int) -> list[WebhookDelivery]:
    events = workspace_events(n)
    endpoints = WebhookEndpoint.objects.bulk_create(
        [
            WebhookEndpoint(workspace=e.workspace, url=f"https://hooks.example.com/d{e.pk}", secret="whsec_row")
            for e in events
        ]
    )
    return WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                workspace=e.workspace,
                endpoint=p,
                event=e,
                status=DeliveryStatus.FAILED,
                attempts=2,
                last_status_code=500,
            )
            for e, p in zip(events, endpoints, strict=True)
        ]
    )


def exact_subscriptions(n: int) -> list[ExactSubscription]:
    return ExactSubscription.objects.bulk_create(
        [
            ExactSubscription(
                workspace=c.workspace,
                connection=c,
                topic="Accounts",
                state=SubscriptionState.ACTIVE,
                division=str(c.account_division),
                removal_token=f"row-removal-{c.pk}",
            )
            for c in connections(n)
        ]
    )


MAKERS = {
    "accounts.User": users,
    "account.EmailAddress": email_addresses,
    "auth.Group": groups,
    "mfa.Authenticator": authenticators,
    "workspaces.Workspace": workspaces,
    "workspaces.Membership": memberships,
    "workspaces.Invitation": invitations,
    "workspaces.ApiKey": api_keys,
    "oauthclients.OAuthClient": oauth_clients,
    "connections.Connection": connections,
    "connections.ConnectionEvent": connection_events,
    "audit.AuditEvent": audit_events,
    "integrations.WorkspaceEvent": workspace_events,
    "integrations.WebhookEndpoint": webhook_endpoints,
    "integrations.WebhookDelivery": webhook_deliveries,
    "integrations.ExactSubscription": exact_subscriptions,
}


def make_rows(model, n: int) -> list:
    label = model._meta.label
    assert label in MAKERS, f"{label} has an admin screen but tests/admin/rows.py has no maker for it: add one."
    return MAKERS[label](n)
