"""The journeys of the issue, in a real browser against the Exact Online emulator.

- A workspace admin, on a laptop and on a phone (390 px, every control
  tapped): sign up → verify → workspace → OAuth client → connection → API key
  (shown once; a reload creates nothing) → a token through the API.
- A member: accept the invitation → connect their own account → cannot
  manage OAuth clients.
- An admin reconnects a connection the provider stopped refreshing
  (``needs_reauth``), from the Overview; the list shows the change live.
"""

import re

import pytest
import requests
from django.core import mail
from playwright.sync_api import Page, expect

from audit.services import Actor
from connections.models import Connection, Status
from tests.e2e.helpers import (
    emails_to,
    expect_fits,
    expect_logged_in,
    fill_signup_form,
    login,
    logout,
    main_nav,
    open_console_page,
    open_user_menu,
    press,
    screenshot,
    signup_and_verify,
    url,
)
from tests.factories import PASSWORD, MembershipFactory, UserFactory, WorkspaceFactory
from tests.fixtures.connections import make_exact_client
from tests.fixtures.peers import EXACT_CLIENT_ID, EXACT_CLIENT_SECRET
from tests.refresh.helpers import connect
from workspaces.models import ApiKey, Role
from workspaces.services import invitation_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NEW_PASSWORD = "correct-horse-battery-9"


def status_badge(page: Page):
    return page.get_by_role("heading", level=1).locator("[data-status]")


def consent_at_exact(page: Page) -> None:
    expect(page.get_by_role("heading", name="Exact Online")).to_be_visible()
    press(page, page.get_by_role("button", name="Allow"))


def step(page: Page, name: str) -> None:
    """A point of the journey: nothing sticks out sideways, and a screenshot."""
    expect_fits(page)
    screenshot(page, name)


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_a_workspace_admin_goes_from_sign_up_to_a_token(live_server, new_person, exact, size):
    page = new_person(size)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    email = f"ada-{size}@example.com"

    # Sign up, verify the address, create a workspace: its Overview starts with the checklist.
    signup_and_verify(page, live_server, email, NEW_PASSWORD)
    page.get_by_label("Name", exact=True).fill("Ada Analytics")
    press(page, page.get_by_role("button", name="Create workspace"))
    expect(page.get_by_role("heading", level=1, name="Ada Analytics")).to_be_visible()
    checklist = page.locator("#first-run")
    expect(checklist.locator("li.done")).to_have_count(0)
    step(page, f"journey-{size}-1-new-workspace")
    # The header's menus, reached by tapping on a phone (nothing covers them).
    expect(open_user_menu(page).get_by_role("link", name="API docs")).to_be_visible()
    expect(main_nav(page).get_by_role("link", name="Admin console")).to_be_visible()
    step(page, f"journey-{size}-1-menus")

    # Register the Exact Online app: Admin console → OAuth2.0 Clients → Register OAuth2.0 Client.
    open_console_page(page, "OAuth2.0 Clients")
    press(page, page.get_by_role("main").get_by_role("link", name="Register OAuth2.0 Client"))
    expect(page.get_by_label("Redirect URI")).to_have_value(f"{live_server.url}/oauth2/callback")
    page.get_by_label("Name", exact=True).fill("Exact Online NL")
    page.get_by_label("Client ID", exact=True).fill(EXACT_CLIENT_ID)
    page.get_by_label("Client Secret", exact=True).fill(EXACT_CLIENT_SECRET)
    page.get_by_label("Authorization URL", exact=True).fill(exact.authorization_url)
    page.get_by_label("Token URL", exact=True).fill(exact.token_url)
    step(page, f"journey-{size}-2-register-client")
    press(page, page.get_by_role("button", name="Save"))
    expect(page.get_by_role("heading", level=1, name="Exact Online NL")).to_be_visible()

    # The next step is offered on the client's page.
    press(page, page.locator("#next-step").get_by_role("link", name="Create a connection"))
    expect(page.get_by_label("OAuth client")).to_have_value(re.compile(".+"))
    page.get_by_label("Name", exact=True).fill("Jansen administratie")
    press(page, page.get_by_role("button", name="Create connection"))
    expect(status_badge(page)).to_have_text("Pending")
    press(page, page.get_by_role("button", name="Connect", exact=True))
    consent_at_exact(page)
    expect(page.get_by_role("status").filter(has_text="is connected as Jan de Vries")).to_be_visible()
    expect(status_badge(page)).to_have_text("Active")
    expect(page.locator("#timeline rect[data-kind=auth]")).to_have_count(1)
    step(page, f"journey-{size}-3-connected")
    connection = Connection.objects.get()
    curl = page.locator("#token-curl").inner_text()
    assert f"/api/v1/workspaces/ada-analytics/connections/{connection.id}/token" in curl

    # An API key with the tokens scope: shown once, copied with a tap; reloading creates nothing.
    open_console_page(page, "API keys")
    page.get_by_label("Name", exact=True).fill("Nightly ETL")
    page.get_by_role("checkbox", name="Read").uncheck()
    page.get_by_role("checkbox", name="Tokens").check()
    press(page, page.get_by_role("button", name="Create key"))
    raw = page.locator("#new-key-value").inner_text()
    assert raw.startswith("tk_")
    press(page, page.get_by_role("button", name="Copy", exact=True))
    expect(page.locator("#copy-new-key")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == raw
    step(page, f"journey-{size}-4-api-key")
    page.reload()
    expect(page.locator("#new-key")).to_have_count(0)
    assert raw not in page.content()
    assert ApiKey.objects.filter(name="Nightly ETL").count() == 1

    # The integration fetches a token with the key, as the page's snippet says.
    token_url = curl.split()[-1]
    answer = requests.get(token_url, headers={"Authorization": f"Bearer {raw}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["access_token"] == exact.grants[-1].access_token

    # The Overview: every step done, the connection counted, nothing needs attention.
    press(page, main_nav(page).get_by_role("link", name="Overview"))
    expect(page.locator("#first-run")).to_have_count(0)
    expect(page.locator("#status-counts [data-status=active] strong")).to_have_text("1")
    expect(page.locator("#attention")).to_contain_text("Nothing needs attention")
    step(page, f"journey-{size}-5-overview")

    logout(page)


def test_an_invited_member_connects_their_own_account_and_cannot_manage_clients(live_server, new_person, exact):
    workspace = WorkspaceFactory(name="Acme Finance", slug="acme")
    alice = UserFactory(email="alice@example.com")
    MembershipFactory(workspace=workspace, user=alice, role=Role.ADMIN)
    make_exact_client(workspace, alice, exact)
    _, token = invitation_create(
        workspace=workspace, email="max@example.com", role=Role.MEMBER, actor=Actor(user=alice)
    )
    member = new_person()

    member.goto(url(live_server, f"/invitations/{token}/"))
    press(member, member.get_by_role("main").get_by_role("link", name="Sign up"))
    fill_signup_form(member, "max@example.com", NEW_PASSWORD)
    expect_logged_in(member, "max@example.com")
    press(member, member.get_by_role("button", name="Accept invitation"))
    expect(member.get_by_text("You are a member of this workspace.")).to_be_visible()
    expect(member.locator("#first-run")).to_have_count(0)  # the checklist is the admins'
    expect(member.get_by_role("link", name="Admin console")).to_have_count(0)

    # Their own connection, authorized at Exact Online.
    press(member, main_nav(member).get_by_role("link", name="Connections"))
    press(member, member.get_by_role("main").get_by_role("link", name="New connection"))
    member.get_by_label("Name", exact=True).fill("Max at Exact")
    press(member, member.get_by_role("button", name="Create connection"))
    press(member, member.get_by_role("button", name="Connect", exact=True))
    consent_at_exact(member)
    expect(status_badge(member)).to_have_text("Active")
    expect(member.get_by_role("button", name="Refresh now")).to_have_count(0)  # admins only
    expect(member.get_by_role("button", name="Disconnect")).to_be_visible()
    assert Connection.objects.get().owner.email == "max@example.com"
    screenshot(member, "journey-member-connected")

    # Disconnecting asks on the page first (no dialog), then says when it happened.
    press(member, member.get_by_role("button", name="Disconnect", exact=True))
    confirm = member.get_by_role("group", name="Confirm: Disconnect")
    expect(confirm).to_contain_text("Its tokens are deleted at once")
    press(member, confirm.get_by_role("button", name="Cancel"))
    expect(confirm).to_be_hidden()
    assert Connection.objects.get().status == Status.ACTIVE
    press(member, member.get_by_role("button", name="Disconnect", exact=True))
    press(member, confirm.get_by_role("button", name="Yes, disconnect"))
    expect(status_badge(member)).to_have_text("Revoked")
    expect(member.locator("#disconnected")).to_contain_text("UTC")
    expect(member.locator("#connected")).to_have_count(0)
    expect(member.get_by_role("button", name="Reconnect")).to_be_visible()

    # OAuth clients are the admins': "not allowed", inside the workspace's layout.
    response = member.goto(url(live_server, "/w/acme/admin/oauth-clients/new/"))
    assert response is not None and response.status == 403
    expect(member.get_by_role("heading", level=1, name="Not allowed")).to_be_visible()
    expect(member.locator("#workspace-switcher summary")).to_contain_text("Acme Finance")
    press(member, member.get_by_role("link", name="Back to Acme Finance"))
    expect(member.locator("#status-counts [data-status=revoked] strong")).to_have_text("1")


def test_an_admin_reconnects_a_connection_the_provider_stopped_refreshing(live_server, new_person, exact, team):
    client = make_exact_client(team.a, team.alice, exact)
    # Its access token expires in 20 s: inside Exact Online's window, so "Refresh now" asks at once.
    connection = connect(
        client, exact, name="Jansen administratie", owner=team.alice, remaining=20, user="jan@example.nl"
    )
    exact.revoke_all()  # the provider ends the grant: the next refresh is refused
    page, watcher = new_person(), new_person()
    login(page, live_server, team.alice.email, PASSWORD)
    login(watcher, live_server, team.alice.email, PASSWORD)
    watcher.goto(url(live_server, "/w/acme/connections/"))
    row = watcher.locator(f"tr[data-connection='{connection.id}']")
    expect(row.locator("[data-status]")).to_have_text("Active")

    page.goto(url(live_server, f"/w/acme/connections/{connection.id}/"))
    press(page, page.get_by_role("button", name="Refresh now"))
    expect(page.get_by_role("alert").filter(has_text="The provider refused the refresh")).to_be_visible()
    expect(status_badge(page)).to_have_text("Needs re-authorization")
    expect(page.locator("#connect-button")).not_to_have_class(re.compile("secondary"))  # Reconnect is the way out
    assert Connection.objects.get().status == Status.NEEDS_REAUTH
    assert emails_to(team.alice.email), "the admins are told by e-mail"

    # The other tab's list shows it without a reload (htmx polls every few seconds).
    expect(row.locator("[data-status]")).to_have_text("Needs re-authorization", timeout=15_000)

    # The Overview puts it first, with the reason and a Reconnect button.
    page.goto(url(live_server, "/w/acme/"))
    attention = page.locator("#attention")
    expect(attention).to_contain_text("Jansen administratie")
    screenshot(page, "journey-reconnect-overview")
    mail.outbox.clear()
    press(page, attention.get_by_role("button", name="Reconnect Jansen administratie"))
    consent_at_exact(page)

    expect(page.get_by_role("status").filter(has_text="is reconnected as Jan de Vries")).to_be_visible()
    expect(status_badge(page)).to_have_text("Active")
    expect(page.locator("#events")).to_contain_text("Re-authorized after the provider refused the refresh.")
    connection.refresh_from_db()
    assert connection.status == Status.ACTIVE and connection.access_token == exact.grants[-1].access_token
    assert emails_to(team.alice.email), "the admins are told it works again"
    page.goto(url(live_server, "/w/acme/"))
    expect(page.locator("#attention")).to_contain_text("Nothing needs attention")
