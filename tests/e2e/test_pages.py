"""Every main page, signed out and signed in, with and without flash messages,
at 1280 px and at 390 px (a phone):

- axe-core (tests/e2e/vendor/axe-core) finds no serious and no critical violation;
- no page is wider than the viewport;
- a screenshot of each lands in ``helpers.SCREENSHOT_DIR`` (``var/screenshots/``),
  named ``<device>-<page>.png``.

One browser, one context per person and size; every page is checked and all
problems are reported together.
"""

import os
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from audit.services import Actor
from connections.events import connection_event
from connections.models import Connection, ConnectionEvent, EventKind, Status
from connections.services import connection_create
from tests.e2e.helpers import axe_violations, login, overflowing, page_width, press, screenshot, url
from tests.factories import PASSWORD, MembershipFactory, WorkspaceFactory, make_api_key
from tests.fixtures.connections import make_exact_client
from workspaces.models import Role
from workspaces.services import invitation_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# E2E_PAGES=overview,api-docs checks only those pages (while working on them).
ONLY = {name for name in os.environ.get("E2E_PAGES", "").split(",") if name}

SIGNED_OUT = {
    "home": "/",
    "login": "/accounts/login/",
    "signup": "/accounts/signup/",
    "password-reset": "/accounts/password/reset/",
    "invitation": "{invitation}",
    "oauth-result": "/oauth2/result",
    "not-found": "/no-such-page/",
    "api-docs": "/api/docs/",
}
ADMIN = {
    "overview": "/w/acme/",
    "connections": "/w/acme/connections/",
    "connection-active": "/w/acme/connections/{active}/",
    "connection-needs-reauth": "/w/acme/connections/{broken}/",
    "connection-new": "/w/acme/connections/new/",
    "console": "/w/acme/admin/",
    "oauth-clients": "/w/acme/admin/oauth-clients/",
    "oauth-client-register": "/w/acme/admin/oauth-clients/new/",
    "oauth-client": "/w/acme/admin/oauth-clients/{client}/",
    "oauth-client-delete": "/w/acme/admin/oauth-clients/{client}/delete/",
    "members": "/w/acme/admin/members/",
    "api-keys": "/w/acme/admin/api-keys/",
    "audit-log": "/w/acme/admin/audit/",
    "new-workspace-overview": "/w/acme-2/",
    "workspace-new": "/workspaces/new/",
    "account-email": "/accounts/email/",
    "account-password": "/accounts/password/change/",
    "account-two-factor": "/accounts/2fa/",
}
MEMBER = {
    "member-overview": "/w/acme/",
    "member-not-allowed": "/w/acme/admin/oauth-clients/",
}


@pytest.fixture
def tour(team, exact):
    """Acme with a client, an active, a broken and a pending connection, a key, an
    invitation and a history; a second workspace of Alice's also named "Acme"."""
    MembershipFactory(workspace=WorkspaceFactory(name="Acme", slug="acme-2"), user=team.alice, role=Role.ADMIN)
    client = make_exact_client(team.a, team.alice, exact, name="Exact NL (emulator)")
    active = _connection(team, client, "Jansen administratie", Status.ACTIVE)
    broken = _connection(team, client, "Bakkerij de Vries", Status.NEEDS_REAUTH)
    pending = connection_create(
        workspace=team.a, oauth_client=client, name="Nieuwe administratie", owner=team.bob, actor=Actor(user=team.bob)
    )
    make_api_key(team.a, scopes=("tokens",), name="Nightly ETL")
    _, token = invitation_create(
        workspace=team.a, email="erin@example.com", role=Role.MEMBER, actor=Actor(user=team.alice)
    )
    return {
        "client": client.id,
        "active": active.id,
        "broken": broken.id,
        "pending": pending.id,
        "invitation": f"/invitations/{token}/",
    }


def _connection(team, client, name: str, status: str) -> Connection:
    connection = connection_create(
        workspace=team.a, oauth_client=client, name=name, owner=team.alice, actor=Actor(user=team.alice)
    )
    now = timezone.now()
    history = [(EventKind.AUTHORIZED, "Authorized as Jan de Vries.", 62, {})]
    for minutes in range(60, 0, -10):  # every ten minutes, inside Exact Online's window
        expiry = now - timedelta(minutes=minutes) + timedelta(seconds=20)
        data = {"previous_expires_at": expiry.isoformat(), "in_window": True}
        history.append((EventKind.REFRESHED, "Refreshed.", minutes, data))
    history.append((EventKind.REFRESH_FAILED, "The provider answered HTTP 503.", 25, {"attempt": 1}))
    for kind, detail, minutes_ago, data in history:
        event = connection_event(connection, kind, detail, **data)
        ConnectionEvent.objects.filter(pk=event.pk).update(created_at=now - timedelta(minutes=minutes_ago))
    Connection.objects.filter(pk=connection.pk).update(
        status=status,
        access_token="access" if status == Status.ACTIVE else "",
        refresh_token="refresh",
        access_token_expires_at=now + timedelta(minutes=8),
        refresh_token_expires_at=now + timedelta(days=29),
        refresh_due_at=now + timedelta(minutes=7, seconds=35) if status == Status.ACTIVE else None,
        last_refreshed_at=now - timedelta(minutes=2),
        connected_at=now - timedelta(hours=1),
        account_name="Jan de Vries",
        account_email="jan@example.nl",
        account_details={"Division": 654321, "DivisionCustomerName": "Jansen Bakkerij B.V."},
        last_error=""
        if status == Status.ACTIVE
        else "The provider refused the refresh token (invalid_grant). Reconnect to authorize again.",
        last_error_at=None if status == Status.ACTIVE else now - timedelta(minutes=3),
    )
    if status == Status.NEEDS_REAUTH:
        connection_event(connection, EventKind.NEEDS_REAUTH, "The provider refused the refresh token (invalid_grant).")
    return connection


class Tour:
    """Visits pages on one device, checks each, and remembers what was wrong."""

    def __init__(self, device: str, live_server, ids: dict):
        self.device, self.live_server, self.ids = device, live_server, ids
        self.problems: list[str] = []

    def visit(self, page: Page, name: str, path: str) -> None:
        if ONLY and name not in ONLY:
            return
        page.goto(url(self.live_server, path.format(**self.ids)))
        self.check(page, name)

    def check(self, page: Page, name: str) -> None:
        if ONLY and name not in ONLY:
            return
        if name.endswith("api-docs"):  # rendered by Swagger UI's script after the load event
            expect(page.locator(".opblock").first).to_be_visible()
        violations = axe_violations(page)
        width = page_width(page)
        screenshot(page, f"{self.device}-{name}")
        for violation in violations:
            self.problems.append(
                f"{self.device} {name}: axe {violation['impact']} {violation['id']} ({violation['help']}) "
                f"at {violation['nodes']}"
            )
        if width > page.viewport_size["width"]:
            self.problems.append(
                f"{self.device} {name}: {width} px wide at {page.viewport_size['width']} px: {overflowing(page)}"
            )


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_every_main_page_is_accessible_and_fits_the_screen(live_server, new_person, team, tour, size):
    run = Tour(size, live_server, tour)

    visitor = new_person(size)
    for name, path in SIGNED_OUT.items():
        run.visit(visitor, name, path)
    # A form error on an entrance page.
    visitor.goto(url(live_server, "/accounts/login/"))
    visitor.get_by_label("Email").fill(team.alice.email)
    visitor.get_by_label("Password", exact=True).fill("wrong password")
    press(visitor, visitor.get_by_role("main").get_by_role("button", name="Log in"))
    expect(visitor.get_by_role("alert").first).to_be_visible()
    run.check(visitor, "login-error")

    alice = new_person(size)
    login(alice, live_server, team.alice.email, PASSWORD)
    for name, path in ADMIN.items():
        run.visit(alice, name, path)
    _flash_messages(alice, run, live_server, tour)

    bob = new_person(size)
    login(bob, live_server, team.bob.email, PASSWORD)
    for name, path in MEMBER.items():
        run.visit(bob, name, path)

    assert not run.problems, "\n".join(run.problems)


def _flash_messages(page: Page, run: Tour, live_server, ids: dict) -> None:
    """Pages showing a success message, an error message and a new API key."""
    page.goto(url(live_server, f"/w/acme/connections/{ids['active']}/"))
    page.locator("#manage summary").click()
    page.get_by_label("Name", exact=True).fill(" ")
    press(page, page.get_by_role("button", name="Rename"))
    expect(page.get_by_role("alert").filter(has_text="Enter a name")).to_be_visible()
    run.check(page, "flash-error")

    page.goto(url(live_server, "/w/acme/admin/settings/"))
    page.get_by_label("Name", exact=True).fill("Acme Finance")
    press(page, page.get_by_role("main").get_by_role("button", name="Save"))
    expect(page.get_by_role("status").filter(has_text="Workspace renamed.")).to_be_visible()
    run.check(page, "flash-success")

    page.goto(url(live_server, "/w/acme/admin/api-keys/"))
    page.get_by_label("Name", exact=True).fill(f"Tour key {run.device}")
    press(page, page.get_by_role("button", name="Create key"))
    expect(page.locator("#new-key")).to_be_visible()
    run.check(page, "api-key-created")
