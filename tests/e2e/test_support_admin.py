"""Support staff in a real browser: sign in, find a broken Exact Online connection by
its division number, read what is wrong, click "Refresh now" — and the workspace's
admin reads in her audit log that "Tokenkeeper support" did it.

Against the Exact Online emulator: the connection's last refresh got HTTP 503;
the refresh support starts is real. Screenshots: $E2E_SCREENSHOT_DIR/e2e-support-*.png.
"""

import pytest
from playwright.sync_api import Page, expect

from accounts.services import support_grant
from audit.services import SYSTEM
from connections import refresh
from connections.models import Connection, Status
from tests.e2e.helpers import login, open_console_page, screenshot, url
from tests.factories import PASSWORD, MembershipFactory, UserFactory, WorkspaceFactory
from tests.fixtures.connections import make_exact_client
from tests.refresh.helpers import connect, refreshes
from workspaces.models import Role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SUPPORT = "sam@tokenkeeper.example"


@pytest.fixture
def acme(exact):
    """Acme (Alice, admin) with two Exact connections: divisions 654321 (broken) and 123456 (fine)."""
    workspace = WorkspaceFactory(name="Acme", slug="acme")
    alice = UserFactory(email="alice@example.com")
    MembershipFactory(workspace=workspace, user=alice, role=Role.ADMIN)
    client = make_exact_client(workspace, alice, exact)
    broken = connect(client, exact, name="Jansen administratie", owner=alice, remaining=20, user="jan@example.nl")
    fine = connect(client, exact, name="Bakker boekhouding", owner=alice, remaining=500, user="piet@example.nl")
    for connection, division, account in ((broken, 654321, "Jan de Vries"), (fine, 123456, "Piet Bakker")):
        Connection.objects.filter(pk=connection.pk).update(
            account_division=division, account_details={"Division": division}, account_name=account
        )
    exact.fail_next(1, status=503)
    assert refresh.refresh_forced(connection=broken).outcome == refresh.Outcome.FAILED
    return broken


@pytest.fixture
def sam(db):
    user = UserFactory(email=SUPPORT, name="Sam Support")
    support_grant(user=user, actor=SYSTEM)
    return user


def sign_in_to_the_admin(page: Page, live_server, email: str) -> None:
    """Open the Django admin: it sends staff to the product's sign-in page, then back."""
    page.goto(url(live_server, "/django-admin/"))
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("main").get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()


def test_support_finds_the_broken_connection_by_division_and_refreshes_it(new_person, live_server, acme, sam, exact):
    page = new_person()
    sign_in_to_the_admin(page, live_server, SUPPORT)

    page.locator("#connections-connection").get_by_role("link", name="Connections").click()
    page.get_by_role("textbox", name="Search").fill("654321")
    page.get_by_role("textbox", name="Search").press("Enter")
    results = page.locator("#result_list tbody tr")
    expect(results).to_have_count(1)
    expect(results).to_contain_text("Refresh failing")
    results.get_by_role("link", name="Jansen administratie").click()

    expect(page.locator("#support-headline")).to_contain_text("Refreshing is failing: 1 failed attempt(s) in a row")
    expect(page.locator("#support-last-error")).to_contain_text("The provider answered HTTP 503")
    expect(page.locator("#support-provider-status")).to_have_text("503")
    expect(page.locator("#support-events")).to_contain_text("Refresh failed")
    screenshot(page, "support-broken")
    page.get_by_role("button", name="Refresh now").click()

    expect(page.locator(".messagelist")).to_contain_text("Refreshed: the new access token is valid until")
    expect(page.locator("#support-headline")).to_contain_text("Working.")
    screenshot(page, "support-refreshed")
    assert Connection.objects.get(pk=acme.pk).status == Status.ACTIVE
    assert refreshes(exact, "ok") == 1

    alice = new_person()
    login(alice, live_server, "alice@example.com", PASSWORD, next_path="/w/acme/")
    open_console_page(alice, "Audit log")
    row = alice.locator('#audit-events tbody tr:has([data-action="connection.refresh_forced"])')
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Tokenkeeper support")
    expect(alice.locator("#audit-events")).not_to_contain_text(SUPPORT)
