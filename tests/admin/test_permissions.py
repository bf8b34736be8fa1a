"""Who may do what in the Django admin.

Support staff (the ``support`` group) look at everything and change nothing:
no add, change or delete of workspaces, OAuth clients, memberships, users or
e-mail addresses. Superusers may, every change is audited, and the
workspace's admins see it as "Tokenkeeper support" (never who it was).
"""

import pytest
from allauth.account.models import EmailAddress
from django.forms.models import model_to_dict

from accounts.models import User
from audit.models import AuditEvent
from audit.services import STAFF_LABEL, Actor
from connections.services import connection_create
from oauthclients.models import OAuthClient
from tests.admin.helpers import admin_url, form_errors, submit_admin_form
from workspaces.models import Membership, Role, Workspace

pytestmark = pytest.mark.django_db


def staff_events() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(by_staff=True).order_by("created_at"))


def the_workspace_audit_log(api, team) -> list[dict]:
    """What Alice, admin of Acme, reads in her workspace's audit log (API)."""
    return api.as_user(team.alice).get("/api/v1/workspaces/acme/audit-events/").json()["results"]


# --- Support staff: look, never change ----------------------------------------------------------------


TARGETS = {
    "workspace": (Workspace, lambda team, client: team.a, {"name": "Renamed", "slug": "renamed"}),
    "oauth client": (OAuthClient, lambda team, client: client, {"name": "Renamed"}),
    "membership": (Membership, lambda team, client: Membership.objects.get(user=team.bob), {"role": Role.ADMIN}),
    "user": (User, lambda team, client: team.bob, {"email": "bob@example.com", "name": "Renamed"}),
    "email address": (
        EmailAddress,
        lambda team, client: EmailAddress.objects.get(user=team.bob),
        {"user": "2", "email": "renamed@example.com", "verified": "on"},
    ),
}


@pytest.mark.parametrize("kind", TARGETS)
def test_support_staff_see_but_cannot_add_change_or_delete(support_client, team, acme_client, kind):
    model, pick, changes = TARGETS[kind]
    obj = pick(team, acme_client)
    before = model_to_dict(obj)

    listing = support_client.get(admin_url(model, "changelist"))
    page = support_client.get(admin_url(model, "change", obj.pk))
    add_page = support_client.get(admin_url(model, "add"))
    add = support_client.post(admin_url(model, "add"), changes)
    change = support_client.post(admin_url(model, "change", obj.pk), changes)
    delete = support_client.post(admin_url(model, "delete", obj.pk), {"post": "yes"})

    assert (listing.status_code, page.status_code) == (200, 200)
    assert (add_page.status_code, add.status_code, change.status_code, delete.status_code) == (403, 403, 403, 403)
    assert not listing.context["has_add_permission"]
    assert "delete_selected" not in (
        listing.context["action_form"].fields["action"].choices if listing.context["action_form"] else []
    )
    obj.refresh_from_db()
    assert model_to_dict(obj) == before
    assert staff_events() == []


def test_support_staff_are_in_the_support_group_with_view_and_support_permissions_only(support_user):
    permissions = support_user.get_all_permissions()
    assert {"connections.view_connection", "workspaces.view_workspace", "audit.view_auditevent"} <= permissions
    assert {"connections.support_connection", "workspaces.support_invitation"} <= permissions
    assert {p for p in permissions if not p.split(".")[1].startswith(("view_", "support_"))} == set()
    assert support_user.is_staff and not support_user.is_superuser


# --- Superusers: change, audited ----------------------------------------------------------------------


def test_a_superuser_adds_renames_and_deletes_a_workspace_audited(admin_client, admin_user, team, api):
    added = submit_admin_form(admin_client, admin_url(Workspace, "add"), name="Initech", slug="initech")
    assert added.status_code == 302, form_errors(added)
    initech = Workspace.objects.get(slug="initech")
    [created] = staff_events()
    renamed = submit_admin_form(admin_client, admin_url(Workspace, "change", team.a.pk), name="Acme Holding")
    assert renamed.status_code == 302, form_errors(renamed)
    reserved = submit_admin_form(admin_client, admin_url(Workspace, "change", team.a.pk), slug="admin")
    deleted = admin_client.post(admin_url(Workspace, "delete", initech.pk), {"post": "yes"})

    assert (created.action, created.workspace_id, created.data) == (
        "staff.workspace_created",
        initech.pk,
        {"fields": ["name", "slug"]},
    )
    assert reserved.status_code == 200 and "reserved" in form_errors(reserved)
    assert deleted.status_code == 302 and not Workspace.objects.filter(slug="initech").exists()
    assert Workspace.objects.get(pk=team.a.pk).name == "Acme Holding"
    # Initech's own trail went with it; its deletion is recorded outside any workspace.
    changed, gone = staff_events()
    assert (changed.action, changed.workspace, changed.data) == (
        "staff.workspace_changed",
        team.a,
        {"fields": ["name"]},
    )
    assert (gone.action, gone.workspace, gone.data) == (
        "staff.workspace_deleted",
        None,
        {"name": "Initech", "slug": "initech"},
    )
    assert all(e.actor == admin_user and e.actor_label == STAFF_LABEL for e in (created, changed, gone))
    [seen] = [e for e in the_workspace_audit_log(api, team) if e["action"] == "staff.workspace_changed"]
    assert (seen["actor"], seen["ip_address"]) == (STAFF_LABEL, None)


def test_deleting_a_workspace_asks_once_and_counts_what_goes_with_it(admin_client, team, acme_client):
    page = admin_client.get(admin_url(Workspace, "delete", team.a.pk))

    assert page.status_code == 200
    assert dict(page.context["model_count"]) == {
        "Members": 2,
        "Invitations": 0,
        "API keys": 0,
        "OAuth clients": 1,
        "Connections": 0,
        "Audit log": AuditEvent.objects.filter(workspace=team.a).count(),
    }


def test_a_superuser_changes_an_oauth_client_through_the_product_rules(
    admin_client, admin_user, team, acme_client, strict_urls, api
):
    url = admin_url(OAuthClient, "change", acme_client.pk)
    renamed = submit_admin_form(admin_client, url, name="Exact Online (NL)", scopes="crm")
    unsafe = submit_admin_form(admin_client, url, token_url="https://intranet.example.com/token")

    assert renamed.status_code == 302, form_errors(renamed)
    assert unsafe.status_code == 200 and "token_url" in unsafe.context["adminform"].form.errors
    client = OAuthClient.objects.get(pk=acme_client.pk)
    assert (client.name, client.scopes, client.token_url) == (
        "Exact Online (NL)",
        "crm",
        "https://start.exactonline.nl/api/oauth2/token",
    )
    [event] = AuditEvent.objects.filter(action="oauth_client.updated")
    assert (event.actor, event.actor_label, event.by_staff, event.workspace) == (admin_user, STAFF_LABEL, True, team.a)
    assert event.data == {"fields": ["name", "scopes"]}
    assert [e["actor"] for e in the_workspace_audit_log(api, team) if e["action"] == "oauth_client.updated"] == [
        STAFF_LABEL
    ]


def test_a_superuser_deletes_an_unused_oauth_client_but_not_one_in_use(admin_client, team, acme_client, globex_client):
    connection_create(
        workspace=team.b, oauth_client=globex_client, name="CRM", owner=team.charlie, actor=Actor(user=team.charlie)
    )

    in_use = admin_client.post(admin_url(OAuthClient, "delete", globex_client.pk), {"post": "yes"})
    unused = admin_client.post(admin_url(OAuthClient, "delete", acme_client.pk), {"post": "yes"})

    assert in_use.status_code == 403 and OAuthClient.objects.filter(pk=globex_client.pk).exists()
    assert unused.status_code == 302 and not OAuthClient.objects.filter(pk=acme_client.pk).exists()
    [event] = AuditEvent.objects.filter(action="oauth_client.deleted")
    assert (event.actor_label, event.workspace) == (STAFF_LABEL, team.a)


def test_a_superuser_adds_changes_and_removes_members_but_never_the_last_admin(admin_client, team):
    dave = User.objects.create_user("dave@example.com", "a pass phrase 42")
    added = submit_admin_form(
        admin_client, admin_url(Membership, "add"), workspace=str(team.a.pk), user=str(dave.pk), role=Role.MEMBER
    )
    assert added.status_code == 302, form_errors(added)
    dave_in_acme = Membership.objects.get(user=dave)
    promoted = submit_admin_form(admin_client, admin_url(Membership, "change", dave_in_acme.pk), role=Role.ADMIN)
    charlie = Membership.objects.get(user=team.charlie)  # Globex's only admin
    demote_last = submit_admin_form(admin_client, admin_url(Membership, "change", charlie.pk), role=Role.MEMBER)
    remove_last = admin_client.post(admin_url(Membership, "delete", charlie.pk), {"post": "yes"})
    removed = admin_client.post(admin_url(Membership, "delete", dave_in_acme.pk), {"post": "yes"})

    assert promoted.status_code == 302, form_errors(promoted)
    assert demote_last.status_code == 200 and "last admin" in form_errors(demote_last)
    assert remove_last.status_code == 403 and removed.status_code == 302
    assert Membership.objects.get(user=team.charlie).role == Role.ADMIN
    assert not Membership.objects.filter(user=dave).exists()
    assert [(e.action, e.workspace) for e in staff_events()] == [
        ("staff.membership_created", team.a),
        ("staff.membership_changed", team.a),
        ("staff.membership_deleted", team.a),
    ]
    assert staff_events()[1].data == {"fields": ["role"]}
    assert staff_events()[2].data == {"email": "dave@example.com", "role": Role.ADMIN}


def test_a_superuser_adds_and_deletes_a_user_audited(admin_client, admin_user):
    added = submit_admin_form(
        admin_client,
        admin_url(User, "add"),
        email="erin@example.com",
        password1="a long pass phrase 42",
        password2="a long pass phrase 42",
    )
    assert added.status_code == 302, form_errors(added)
    erin = User.objects.get(email="erin@example.com")
    deleted = admin_client.post(admin_url(User, "delete", erin.pk), {"post": "yes"})

    assert deleted.status_code == 302 and not User.objects.filter(email="erin@example.com").exists()
    created, gone = staff_events()
    assert (created.action, gone.action) == ("staff.user_created", "staff.user_deleted")
    assert "a long pass phrase" not in repr(created.data) and created.actor == admin_user


def test_a_superuser_adds_changes_and_deletes_an_email_address_audited(admin_client, team):
    added = submit_admin_form(
        admin_client, admin_url(EmailAddress, "add"), user=str(team.bob.pk), email="bob@work.example", verified="on"
    )
    assert added.status_code == 302, form_errors(added)
    address = EmailAddress.objects.get(email="bob@work.example")
    changed = submit_admin_form(admin_client, admin_url(EmailAddress, "change", address.pk), verified=None)
    deleted = admin_client.post(admin_url(EmailAddress, "delete", address.pk), {"post": "yes"})

    assert changed.status_code == 302 and deleted.status_code == 302, form_errors(changed)
    assert [e.action for e in staff_events()] == [
        "staff.email_address_created",
        "staff.email_address_changed",
        "staff.email_address_deleted",
    ]
    assert staff_events()[1].data == {"fields": ["verified"]}


def test_support_staff_cannot_mark_addresses_verified(support_client, team):
    EmailAddress.objects.filter(user=team.bob).update(verified=False)
    address = EmailAddress.objects.get(user=team.bob)

    support_client.post(
        admin_url(EmailAddress, "changelist"), {"action": "make_verified", "_selected_action": [address.pk]}
    )

    assert not EmailAddress.objects.get(pk=address.pk).verified
