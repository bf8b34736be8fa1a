"""Roles, removal and leaving, through the API and the browser; a workspace always keeps an admin."""

import pytest
from django.contrib.messages import get_messages

from tests.helpers import assert_error
from tests.workspaces.helpers import state
from workspaces.models import Membership

pytestmark = pytest.mark.django_db

ACME = "/api/v1/workspaces/acme"
LAST_ADMIN_LEAVE = "The last admin cannot leave or be removed; make someone else admin first."
LAST_ADMIN_DEMOTE = "The last admin cannot be demoted; make someone else admin first."


def role_of(user, workspace="acme") -> str | None:
    membership = Membership.objects.filter(user=user, workspace__slug=workspace).first()
    return membership.role if membership else None


def flashed(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# --- API --------------------------------------------------------------------------------


def test_admin_promotes_a_member_who_can_then_manage_invitations(team, ids, api):
    response = api.as_user(team.alice).patch(f"{ACME}/members/{ids.url['bob']}/", {"role": "admin"}, format="json")
    assert response.json()["role"] == "admin"
    assert api.as_user(team.bob).get(f"{ACME}/invitations/").status_code == 200


def test_admin_demotes_another_admin(team, ids, api):
    Membership.objects.filter(id=ids.url["bob"]).update(role="admin")
    response = api.as_user(team.bob).patch(f"{ACME}/members/{ids.url['alice']}/", {"role": "member"}, format="json")
    assert response.status_code == 200
    assert role_of(team.alice) == "member"


def test_member_cannot_change_roles(team, ids, api):
    response = api.as_user(team.bob).patch(f"{ACME}/members/{ids.url['bob']}/", {"role": "admin"}, format="json")
    assert_error(response, 403, "Only workspace admins can do this.")
    assert role_of(team.bob) == "member"


def test_role_must_be_admin_or_member(team, ids, api):
    before = state()
    response = api.as_user(team.alice).patch(f"{ACME}/members/{ids.url['bob']}/", {"role": "owner"}, format="json")
    assert_error(response, 400, '"owner" is not a valid choice.')
    assert state() == before


def test_admin_removes_a_member_who_then_loses_access(team, ids, api):
    response = api.as_user(team.alice).delete(f"{ACME}/members/{ids.url['bob']}/")
    assert response.status_code == 204
    assert_error(api.as_user(team.bob).get(f"{ACME}/"), 404)


def test_member_leaves_and_loses_access(team, api):
    assert api.as_user(team.bob).post(f"{ACME}/leave").status_code == 204
    assert role_of(team.bob) is None
    assert api.as_user(team.bob).get("/api/v1/workspaces/").json() == []


def test_last_admin_cannot_leave(team, api):
    before = state()
    response = api.as_user(team.alice).post(f"{ACME}/leave")
    assert_error(response, 400, LAST_ADMIN_LEAVE, code="last_admin")
    assert state() == before


def test_last_admin_cannot_be_removed(team, ids, api):
    before = state()
    response = api.as_user(team.alice).delete(f"{ACME}/members/{ids.url['alice']}/")
    assert_error(response, 400, LAST_ADMIN_LEAVE, code="last_admin")
    assert state() == before


def test_last_admin_cannot_be_demoted(team, ids, api):
    before = state()
    response = api.as_user(team.alice).patch(f"{ACME}/members/{ids.url['alice']}/", {"role": "member"}, format="json")
    assert_error(response, 400, LAST_ADMIN_DEMOTE, code="last_admin")
    assert state() == before


def test_admin_can_leave_once_someone_else_is_admin(team, ids, api):
    client = api.as_user(team.alice)
    client.patch(f"{ACME}/members/{ids.url['bob']}/", {"role": "admin"}, format="json")
    assert client.post(f"{ACME}/leave").status_code == 204
    assert role_of(team.alice) is None
    assert role_of(team.bob) == "admin"


# --- Browser ------------------------------------------------------------------------------


def test_admin_changes_a_role_in_the_browser(team, ids, client):
    client.force_login(team.alice)
    response = client.post(f"/w/acme/admin/members/{ids.url['bob']}/role/", {"role": "admin"})
    assert response["Location"] == "/w/acme/admin/members/"
    assert flashed(response) == ["bob@example.com is now admin."]
    assert role_of(team.bob) == "admin"


def test_last_admin_cannot_be_demoted_in_the_browser(team, ids, client):
    client.force_login(team.alice)
    before = state()
    response = client.post(f"/w/acme/admin/members/{ids.url['alice']}/role/", {"role": "member"})
    assert flashed(response) == [LAST_ADMIN_DEMOTE]
    assert state() == before


def test_last_admin_cannot_be_removed_in_the_browser(team, ids, client):
    client.force_login(team.alice)
    before = state()
    response = client.post(f"/w/acme/admin/members/{ids.url['alice']}/remove/")
    assert flashed(response) == [LAST_ADMIN_LEAVE]
    assert state() == before


def test_admin_removes_a_member_in_the_browser(team, ids, client):
    client.force_login(team.alice)
    response = client.post(f"/w/acme/admin/members/{ids.url['bob']}/remove/")
    assert flashed(response) == ["bob@example.com was removed from the workspace."]
    assert role_of(team.bob) is None


def test_member_leaves_in_the_browser(team, client):
    client.force_login(team.bob)
    response = client.post("/w/acme/leave/", follow=True)
    assert response.redirect_chain[0][0] == "/"
    assert "You left “Acme”." in response.content.decode()
    assert client.get("/w/acme/").status_code == 404


def test_last_admin_cannot_leave_in_the_browser(team, client):
    client.force_login(team.alice)
    before = state()
    response = client.post("/w/acme/leave/", follow=True)
    assert response.redirect_chain == [("/w/acme/", 302)]
    assert LAST_ADMIN_LEAVE in response.content.decode()
    assert state() == before
