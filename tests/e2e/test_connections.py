"""Connections in a real browser: register a client, create a connection, Connect, consent, back active.

Against the Exact Online emulator and a django-oauth-toolkit server (PKCE
required), and the API-started flow (``connect_url``) in a browser that never
logged in to Tokenkeeper. Screenshots: connection-*.png (``helpers.screenshot``).
"""

import pytest
import requests
from playwright.sync_api import Page, expect

from audit.services import Actor
from connections.models import Connection
from oauthclients.services import oauth_client_create
from tests.e2e.helpers import login, open_console_page, screenshot, url
from tests.factories import PASSWORD, MembershipFactory, UserFactory, WorkspaceFactory, make_api_key
from tests.fixtures.peers import EXACT_CLIENT_ID as EXACT_ID
from tests.fixtures.peers import EXACT_CLIENT_SECRET as EXACT_SECRET
from workspaces.models import Role

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.dot_server(access_token_lifetime=3600),  # the lifetime the tests type in
]


@pytest.fixture
def alice(db):
    workspace = WorkspaceFactory(name="Acme", slug="acme")
    user = UserFactory(email="alice@example.com")
    MembershipFactory(workspace=workspace, user=user, role=Role.ADMIN)
    return user


# --- Steps -------------------------------------------------------------------------------


def register_client(page: Page, live_server, provider: str, fields: dict, advanced: dict | None = None) -> None:
    """Admin console -> OAuth2.0 Clients -> Register OAuth2.0 Client, fill in, Save."""
    page.goto(url(live_server, "/w/acme/"))
    open_console_page(page, "OAuth2.0 Clients")
    page.get_by_role("main").get_by_role("link", name="Register OAuth2.0 Client").click()
    expect(page.get_by_role("heading", level=1, name="Register OAuth2.0 Client")).to_be_visible()
    expect(page.get_by_label("Redirect URI")).to_have_value(f"{live_server.url}/oauth2/callback")
    page.get_by_label("Type").select_option(provider)
    for label, value in fields.items():
        page.get_by_label(label, exact=True).fill(value)
    if advanced:
        page.locator("#advanced summary").click()
        for label, value in advanced.items():
            field = page.get_by_label(label, exact=True)
            if isinstance(value, bool):
                field.set_checked(value)
            elif field.evaluate("el => el.tagName") == "SELECT":
                field.select_option(value)
            else:
                field.fill(value)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", level=1, name=fields["Name"])).to_be_visible()


def create_connection(page: Page, name: str, client_name: str) -> None:
    """Connections -> New connection: ends on the new connection's page, Pending."""
    page.get_by_role("banner").get_by_role("link", name="Connections").click()
    expect(page.get_by_role("heading", level=1, name="Connections")).to_be_visible()
    page.get_by_role("link", name="New connection").click()
    page.get_by_label("Name").fill(name)
    page.get_by_label("OAuth client").select_option(label=client_name)
    page.get_by_role("button", name="Create connection").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)
    expect(status_badge(page)).to_have_text("Pending")


def status_badge(page: Page):
    return page.get_by_role("heading", level=1).locator("[data-status]")


def consent_at_exact(page: Page, division: str = "") -> None:
    expect(page.get_by_role("heading", name="Exact Online")).to_be_visible()
    expect(page.locator("#prompt")).to_contain_text("Tokenkeeper")
    if division:
        page.get_by_label("Division").select_option(division)
    page.get_by_role("button", name="Allow").click()


def consent_at_dot(page: Page, dot) -> None:
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.get_by_label("Username").fill(dot.username)
    page.get_by_label("Password").fill(dot.password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Authorize Tokenkeeper?")).to_be_visible()
    page.get_by_role("button", name="Authorize").click()


# --- Tests -------------------------------------------------------------------------------


def test_exact_online_connect_in_the_browser(live_server, new_person, alice, exact):
    page = new_person()
    login(page, live_server, alice.email, PASSWORD)
    register_client(
        page,
        live_server,
        "exact_online",
        {
            "Name": "Exact Online NL",
            "Client ID": EXACT_ID,
            "Client Secret": EXACT_SECRET,
            "Authorization URL": exact.authorization_url,
            "Token URL": exact.token_url,
        },
    )
    create_connection(page, "Jansen administratie", "Exact Online NL")

    page.get_by_role("button", name="Connect").click()
    consent_at_exact(page, division="654321")

    expect(page.get_by_role("status").filter(has_text="is connected as Jan de Vries and ready to use")).to_be_visible()
    expect(status_badge(page)).to_have_text("Active")
    expect(page.locator("#division")).to_have_text("654321 — Jansen Bakkerij B.V.")
    expect(page.locator("#account")).to_have_text("Jan de Vries <jan@example.nl>")
    expect(page.locator("#events")).to_contain_text("Authorized as Jan de Vries.")
    expect(page.get_by_role("button", name="Reconnect")).to_be_visible()
    screenshot(page, "connection-exact")

    connection = Connection.objects.get()
    assert connection.status == "active" and connection.account_details["Division"] == 654321
    assert connection.access_token == exact.grants[-1].access_token
    assert connection.access_token not in page.content()


def test_dot_connect_in_the_browser_with_pkce(live_server, new_person, alice, dot):
    page = new_person()
    login(page, live_server, alice.email, PASSWORD)
    register_client(
        page,
        live_server,
        "generic",
        {
            "Name": "Standard OAuth",
            "Client ID": dot.client_id,
            "Client Secret": dot.client_secret,
            "Authorization URL": dot.authorization_url,
            "Token URL": dot.token_url,
            "Access Token Expires In (ms)": "3600000",
            "Refresh Token Expires In (ms)": "0",
        },
        advanced={
            "Scopes": "read write",
            "Client authentication method": "client_secret_basic",
            "Use PKCE (S256)": True,
            "Identity URL": dot.userinfo_url,
        },
    )
    create_connection(page, "Alice at DOT", "Standard OAuth")

    page.get_by_role("button", name="Connect").click()
    consent_at_dot(page, dot)

    expect(page.get_by_role("status").filter(has_text="is connected as alice and ready to use")).to_be_visible()
    expect(status_badge(page)).to_have_text("Active")
    expect(page.locator("#account")).to_have_text("alice <alice@example.com>")
    screenshot(page, "connection-dot")
    connection = Connection.objects.get()
    assert connection.granted_scopes == "read write" and connection.refresh_token_expires_at is None


@pytest.mark.parametrize("provider", ["exact", "dot"])
def test_api_started_flow_in_a_browser_without_tokenkeeper_login(request, live_server, new_person, alice, provider):
    peer = request.getfixturevalue(provider)
    if provider == "exact":
        fields = {"provider": "exact_online", "client_id": EXACT_ID, "client_secret": EXACT_SECRET}
    else:
        fields = {
            "provider": "generic",
            "client_id": peer.client_id,
            "client_secret": peer.client_secret,
            "scopes": "read write",
            "identity_url": peer.userinfo_url,
            "use_pkce": True,
            "token_endpoint_auth_method": "client_secret_post",
        }
    client = oauth_client_create(
        workspace=alice.memberships.get().workspace,
        actor=Actor(user=alice),
        name="Peer",
        authorization_url=peer.authorization_url,
        token_url=peer.token_url,
        access_token_expires_in=3_600_000,
        refresh_token_expires_in=0,
        **fields,
    )
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {make_api_key(client.workspace, scopes=('read', 'write'))}"
    base = url(live_server, "/api/v1/workspaces/acme/connections/")

    created = api.post(base, json={"name": "Customer 42", "oauth_client": str(client.id)}, timeout=10)
    assert created.status_code == 201, created.text
    connection_id = created.json()["id"]
    authorize = api.post(f"{base}{connection_id}/authorize", timeout=10)
    assert authorize.status_code == 200, authorize.text
    connect_url = authorize.json()["connect_url"]
    assert connect_url.startswith(f"{live_server.url}/oauth2/connect/")

    end_user = new_person()  # a fresh browser: no Tokenkeeper session at all
    end_user.goto(connect_url)
    if provider == "exact":
        consent_at_exact(end_user)
    else:
        consent_at_dot(end_user, peer)

    expect(end_user.get_by_role("heading", level=1, name="Connection ready")).to_be_visible()
    expect(end_user.get_by_role("status")).to_contain_text("“Customer 42” is connected as")
    expect(end_user.get_by_text("You can close this window.")).to_be_visible()
    expect(end_user.get_by_role("banner").get_by_role("link", name="Log in")).to_be_visible()
    screenshot(end_user, f"connection-ready-{provider}")

    body = api.get(f"{base}{connection_id}/", timeout=10).json()
    assert body["status"] == "active" and body["last_error"] == ""

    # The link was single-use.
    end_user.goto(connect_url)
    expect(end_user.get_by_role("heading", level=1, name="Connection not completed")).to_be_visible()
    expect(end_user.get_by_role("alert")).to_have_text("This connect link was already used. Ask for a new one.")


def test_declined_consent_shows_what_went_wrong(live_server, new_person, alice, exact):
    oauth_client = oauth_client_create(
        workspace=alice.memberships.get().workspace,
        actor=Actor(user=alice),
        provider="exact_online",
        name="Exact Online NL",
        client_id=EXACT_ID,
        client_secret=EXACT_SECRET,
        authorization_url=exact.authorization_url,
        token_url=exact.token_url,
    )
    page = new_person()
    login(page, live_server, alice.email, PASSWORD)
    page.goto(url(live_server, "/w/acme/connections/new/"))
    page.get_by_label("Name").fill("Jansen administratie")
    page.get_by_label("OAuth client").select_option(label=oauth_client.name)
    page.get_by_role("button", name="Create connection").click()

    page.get_by_role("button", name="Connect").click()
    page.get_by_role("button", name="Deny").click()

    expect(page.locator("#last-error")).to_contain_text("Access was denied at the provider")
    expect(status_badge(page)).to_have_text("Pending")
    screenshot(page, "connection-denied")

    page.get_by_role("button", name="Connect").click()  # try again
    consent_at_exact(page)
    expect(status_badge(page)).to_have_text("Active")
    expect(page.locator("#last-error")).to_have_count(0)
