"""How the console pages present things: readable audit rows, the sole admin's row, the
workspace kept on "not allowed" and account pages, workspaces with the same name told apart."""

import pytest

from audit.models import AuditEvent
from tests.factories import MembershipFactory, WorkspaceFactory
from workspaces.auditlog import action_label, audit_row, show_value
from workspaces.models import Role

pytestmark = pytest.mark.django_db


def test_action_codes_read_as_words():
    assert action_label("connection.reconnected") == "Connection reconnected"
    assert action_label("api_key.created") == "API key created"
    assert action_label("webhook_endpoint.secret_rotated") == "Webhook endpoint secret rotated"  # not listed
    assert action_label("staff.connection_refresh") == "Staff: connection refresh"


def test_details_read_as_text_not_python():
    assert show_value(["read", "tokens"]) == "read, tokens"
    assert show_value(True) == "yes" and show_value(None) == "—"
    assert show_value("2026-05-01T13:04:05.123456+00:00") == "2026-05-01 13:04:05 UTC"
    row = audit_row(AuditEvent(action="api_key.created", data={"name": "ETL", "scopes": ["read", "tokens"]}))
    assert row.label == "API key created" and row.details == [("name", "ETL"), ("scopes", "read, tokens")]


def test_the_audit_page_shows_labels_and_lists_as_text(team, client, key_factory):
    key_factory(team.a, scopes=("read", "tokens"), name="Nightly ETL")
    client.force_login(team.alice)
    page = client.get("/w/acme/admin/audit/").content.decode()
    assert ">API key created</span>" in page and "read, tokens" in page and "['read'" not in page


def test_the_only_admin_cannot_remove_or_demote_themselves(team, client):
    client.force_login(team.alice)
    page = client.get("/w/acme/admin/members/").content.decode()
    assert "The only admin: make someone else admin" in page
    assert 'aria-label="Role of alice@example.com"' not in page  # no role form on that row
    assert 'aria-label="Role of bob@example.com"' in page
    MembershipFactory(workspace=team.a, user=team.charlie, role=Role.ADMIN)
    page = client.get("/w/acme/admin/members/").content.decode()
    assert "The only admin" not in page and 'aria-label="Role of alice@example.com"' in page


def test_not_allowed_keeps_the_workspace_in_the_header(team, client):
    client.force_login(team.bob)
    response = client.get("/w/acme/admin/members/")
    page = response.content.decode()
    assert response.status_code == 403
    assert 'id="workspace-switcher"' in page and ">Back to Acme</a>" in page
    assert 'aria-label="Main"' in page


def test_account_pages_keep_the_last_workspace(team, client):
    client.force_login(team.alice)
    client.get("/w/acme/")
    page = client.get("/accounts/email/").content.decode()
    assert 'href="/w/acme/connections/"' in page and "Back to Acme" in page


def test_workspaces_with_the_same_name_show_their_slugs(team, client):
    MembershipFactory(workspace=WorkspaceFactory(name="Acme", slug="acme-2"), user=team.alice, role=Role.ADMIN)
    client.force_login(team.alice)
    page = client.get("/w/acme/").content.decode()
    assert '<span class="slug">acme</span>' in page and '<span class="slug">acme-2</span>' in page
    assert '<span class="slug">globex</span>' not in page


def test_signed_out_pages_have_no_empty_navigation(client):
    page = client.get("/").content.decode()
    assert '<nav class="workspace-nav"></nav>' not in page and page.count("<nav") == 1
