"""Browser pages under /w/<workspace>/: admins only in the console, members on the overview,
outsiders see nothing, anonymous visitors are sent to log in."""

import pytest

from tests.workspaces.helpers import state

pytestmark = pytest.mark.django_db

CONSOLE = [
    ("get", "/w/acme/admin/", None),
    ("get", "/w/acme/admin/settings/", None),
    ("post", "/w/acme/admin/settings/", {"name": "Hijacked"}),
    ("get", "/w/acme/admin/members/", None),
    ("post", "/w/acme/admin/members/", {"email": "mallory@example.com", "role": "admin"}),
    ("post", "/w/acme/admin/members/{bob}/role/", {"role": "admin"}),
    ("post", "/w/acme/admin/members/{alice}/remove/", None),
    ("post", "/w/acme/admin/invitations/{invitation}/revoke/", None),
    ("get", "/w/acme/admin/api-keys/", None),
    ("post", "/w/acme/admin/api-keys/", {"name": "Backdoor", "scopes": ["read", "write", "tokens"]}),
    ("post", "/w/acme/admin/api-keys/{key}/revoke/", None),
    ("get", "/w/acme/admin/audit/", None),
]
MEMBER_PAGES = [
    ("get", "/w/acme/", None),
    ("post", "/w/acme/leave/", None),
]


def pages(rows):
    return pytest.mark.parametrize(
        ("method", "path", "data"), [pytest.param(*row, id=f"{row[0].upper()} {row[1]}") for row in rows]
    )


def visit(client, method, path, data, ids):
    return getattr(client, method)(path.format(**ids.url), data or {})


@pages(CONSOLE)
def test_member_is_refused_every_console_page(team, ids, client, method, path, data):
    client.force_login(team.bob)
    before = state()
    response = visit(client, method, path, data, ids)
    assert response.status_code == 403
    assert "Only workspace admins can open this page." in response.content.decode()
    assert state() == before


@pages(CONSOLE + MEMBER_PAGES)
def test_non_member_finds_no_workspace_page(team, ids, client, method, path, data):
    client.force_login(team.charlie)
    before = state()
    response = visit(client, method, path, data, ids)
    assert response.status_code == 404
    assert "Acme" not in response.content.decode()
    assert state() == before


@pages(CONSOLE + MEMBER_PAGES)
def test_anonymous_visitor_is_sent_to_log_in(team, ids, client, method, path, data):
    before = state()
    response = visit(client, method, path, data, ids)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path.format(**ids.url)}"
    assert state() == before


@pytest.mark.parametrize("path", [p for m, p, _ in CONSOLE if m == "get"])
def test_admin_opens_every_console_page(team, client, path):
    client.force_login(team.alice)
    response = client.get(path)
    assert response.status_code == 200
    assert 'aria-label="Admin console"' in response.content.decode()


def test_member_sees_the_overview_with_its_members(team, client):
    client.force_login(team.bob)
    response = client.get("/w/acme/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "<strong>member</strong> of this workspace." in page
    assert "alice@example.com" in page
    assert "Manage members" not in page


def test_admin_sees_the_way_to_manage_members_on_the_overview(team, client):
    client.force_login(team.alice)
    assert 'href="/w/acme/admin/members/"' in client.get("/w/acme/").content.decode()


def test_workspace_switcher_lists_only_the_visitors_workspaces(team, client):
    client.force_login(team.charlie)
    page = client.get("/w/globex/").content.decode()
    assert 'href="/w/globex/"' in page
    assert 'href="/w/acme/"' not in page


def test_home_sends_a_member_to_their_workspace(team, client):
    client.force_login(team.bob)
    assert client.get("/")["Location"] == "/w/acme/"
