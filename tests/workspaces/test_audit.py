"""Every change to members, invitations, roles and API keys leaves an audit event: who, what, when, from where."""

from dataclasses import dataclass
from typing import Any

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import Actor
from tests.factories import make_api_key
from tests.oauthclients.helpers import generic_body
from workspaces.models import ApiKey, Invitation, Membership, Workspace
from workspaces.services import invitation_create

pytestmark = pytest.mark.django_db

IP = "203.0.113.7"
ACME = "/api/v1/workspaces/acme"


@dataclass
class Change:
    """What a test did: who did it, and which object the event must name."""

    actor: Any
    target: Any
    data: dict


def rename_workspace(team, ids, api, client):
    api.as_user(team.alice).patch(f"{ACME}/", {"name": "Acme Corp"}, format="json", REMOTE_ADDR=IP)
    return Change(team.alice, team.a, {"from": "Acme", "to": "Acme Corp"})


def create_workspace(team, ids, api, client):
    api.as_user(team.bob).post("/api/v1/workspaces/", {"name": "Initech"}, format="json", REMOTE_ADDR=IP)
    return Change(team.bob, Workspace.objects.get(slug="initech"), {"name": "Initech", "slug": "initech"})


def change_role(team, ids, api, client):
    api.as_user(team.alice).patch(f"{ACME}/members/{ids.url['bob']}/", {"role": "admin"}, format="json", REMOTE_ADDR=IP)
    return Change(
        team.alice,
        Membership.objects.get(id=ids.url["bob"]),
        {"email": "bob@example.com", "from": "member", "to": "admin"},
    )


def change_role_in_browser(team, ids, api, client):
    client.force_login(team.alice)
    client.post(f"/w/acme/admin/members/{ids.url['bob']}/role/", {"role": "admin"}, REMOTE_ADDR=IP)
    return Change(
        team.alice,
        Membership.objects.get(id=ids.url["bob"]),
        {"email": "bob@example.com", "from": "member", "to": "admin"},
    )


def remove_member(team, ids, api, client):
    bob = Membership.objects.get(id=ids.url["bob"])
    api.as_user(team.alice).delete(f"{ACME}/members/{bob.id}/", REMOTE_ADDR=IP)
    return Change(team.alice, bob, {"email": "bob@example.com", "role": "member"})


def leave(team, ids, api, client):
    bob = Membership.objects.get(id=ids.url["bob"])
    api.as_user(team.bob).post(f"{ACME}/leave", REMOTE_ADDR=IP)
    return Change(team.bob, bob, {"email": "bob@example.com", "role": "member"})


def invite(team, ids, api, client):
    api.as_user(team.alice).post(
        f"{ACME}/invitations/", {"email": "dave@example.com", "role": "admin"}, format="json", REMOTE_ADDR=IP
    )
    return Change(
        team.alice, Invitation.objects.get(email="dave@example.com"), {"email": "dave@example.com", "role": "admin"}
    )


def revoke_invitation(team, ids, api, client):
    api.as_user(team.alice).delete(f"{ACME}/invitations/{ids.acme.invitation.id}/", REMOTE_ADDR=IP)
    return Change(team.alice, ids.acme.invitation, {"email": "erin@example.com"})


def _bob_accepts(team, client):
    invitation, token = invitation_create(
        workspace=team.b, email="bob@example.com", role="member", actor=Actor(user=team.charlie)
    )
    client.force_login(team.bob)
    client.post(f"/invitations/{token}/", REMOTE_ADDR=IP)
    return invitation


def accept_invitation(team, ids, api, client):
    invitation = _bob_accepts(team, client)
    return Change(team.bob, invitation, {"email": "bob@example.com"})


def join_by_invitation(team, ids, api, client):
    _bob_accepts(team, client)
    return Change(
        team.bob,
        Membership.objects.get(workspace=team.b, user=team.bob),
        {"email": "bob@example.com", "role": "member"},
    )


def create_key(team, ids, api, client):
    api.as_user(team.alice).post(
        f"{ACME}/api-keys/", {"name": "Reports", "scopes": ["tokens", "read"]}, format="json", REMOTE_ADDR=IP
    )
    return Change(team.alice, ApiKey.objects.get(name="Reports"), {"name": "Reports", "scopes": ["read", "tokens"]})


def create_key_in_browser(team, ids, api, client):
    client.force_login(team.alice)
    client.post("/w/acme/admin/api-keys/", {"name": "Reports", "scopes": ["read"]}, REMOTE_ADDR=IP)
    return Change(team.alice, ApiKey.objects.get(name="Reports"), {"name": "Reports", "scopes": ["read"]})


def revoke_key(team, ids, api, client):
    api.as_user(team.alice).delete(f"{ACME}/api-keys/{ids.acme.key.id}/", REMOTE_ADDR=IP)
    return Change(team.alice, ids.acme.key, {"name": "Nightly ETL"})


@pytest.mark.parametrize(
    ("action", "make_change"),
    [
        ("workspace.created", create_workspace),
        ("workspace.renamed", rename_workspace),
        ("member.role_changed", change_role),
        ("member.role_changed", change_role_in_browser),
        ("member.removed", remove_member),
        ("member.left", leave),
        ("invitation.created", invite),
        ("invitation.revoked", revoke_invitation),
        ("invitation.accepted", accept_invitation),
        ("member.added", join_by_invitation),
        ("api_key.created", create_key),
        ("api_key.created", create_key_in_browser),
        ("api_key.revoked", revoke_key),
    ],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_change_is_recorded_with_actor_target_address_and_time(team, ids, api, client, action, make_change):
    earlier = set(AuditEvent.objects.values_list("id", flat=True))
    started = timezone.now()
    change = make_change(team, ids, api, client)
    [event] = AuditEvent.objects.filter(action=action).exclude(id__in=earlier)
    assert started <= event.created_at <= timezone.now()
    assert (event.actor, event.actor_label) == (change.actor, change.actor.email)
    assert (event.target_type, event.target_id) == (change.target._meta.model_name, str(change.target.pk))
    assert event.ip_address == IP
    assert event.data == change.data
    workspace = change.target if isinstance(change.target, Workspace) else change.target.workspace
    assert event.workspace == workspace


def test_change_made_with_an_api_key_names_the_key(team, api):
    raw = make_api_key(team.a, scopes=["write"], name="Deploy bot")
    api.as_key(raw).post(f"{ACME}/oauth-clients/", generic_body(), format="json", REMOTE_ADDR=IP)
    event = AuditEvent.objects.get(action="oauth_client.created")
    assert event.actor is None
    assert event.actor_api_key.name == "Deploy bot"
    assert event.actor_label == f"API key Deploy bot (tk_{raw.split('_')[1]}_…)"
    assert event.ip_address == IP


@pytest.fixture
def role_changed(team, ids, api):
    api.as_user(team.alice).patch(f"{ACME}/members/{ids.url['bob']}/", {"role": "admin"}, format="json", REMOTE_ADDR=IP)
    api.as_user(team.alice).patch(
        f"{ACME}/members/{ids.url['bob']}/", {"role": "member"}, format="json", REMOTE_ADDR=IP
    )


def test_admin_reads_the_audit_log_in_the_browser(team, client, role_changed):
    client.force_login(team.alice)
    page = client.get("/w/acme/admin/audit/").content.decode()
    rows = [row for row in page.split("<tr>") if 'data-action="member.role_changed"' in row]
    assert all(">Role changed</span>" in row and '<span class="muted">from:</span>' in row for row in rows)
    assert len(rows) == 2
    assert all("alice@example.com" in row and IP in row and "bob@example.com" in row for row in rows)
    assert "frank@example.com" not in page  # Globex's invitation


def test_member_cannot_read_the_audit_log_in_the_browser(team, client, role_changed):
    client.force_login(team.bob)
    response = client.get("/w/acme/admin/audit/")
    assert response.status_code == 403
    assert "member.role_changed" not in response.content.decode()


def test_non_member_cannot_find_the_audit_log_in_the_browser(team, client, role_changed):
    client.force_login(team.charlie)
    assert client.get("/w/acme/admin/audit/").status_code == 404


def test_admin_reads_the_audit_log_through_the_api_newest_first(team, ids, api, role_changed):
    events = api.as_user(team.alice).get(f"{ACME}/audit-events/").json()["results"]
    assert [e["action"] for e in events[:2]] == ["member.role_changed", "member.role_changed"]
    assert [e["data"]["to"] for e in events[:2]] == ["member", "admin"]
    assert {(e["actor"], e["ip_address"], e["target_id"]) for e in events[:2]} == {
        ("alice@example.com", IP, str(ids.url["bob"]))
    }
    assert "frank@example.com" not in str(events)


def test_audit_log_filters_by_action_family(team, ids, api, role_changed):
    events = api.as_user(team.alice).get(f"{ACME}/audit-events/?action=member").json()["results"]
    assert {e["action"] for e in events} == {"member.role_changed"}
