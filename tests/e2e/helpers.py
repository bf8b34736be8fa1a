"""Page-level steps for browser tests, shared by the tests in tests/e2e.

Every helper takes the Playwright ``page`` of one person (see the
``new_person`` fixture) and, where it navigates, pytest-django's
``live_server``. They assert what a person would see, with ``expect`` (which
waits), so a failure points at the step that went wrong.

E-mails are read from ``django.core.mail.outbox``: the live server runs in a
thread of the test process and the test settings use the locmem backend.
"""

import os
import re
import tempfile
from pathlib import Path

from django.core import mail
from playwright.sync_api import Page, expect

CONFIRM_LINK = re.compile(r"https?://\S+/accounts/confirm-email/[^/\s]+/")
INVITATION_LINK = re.compile(r"https?://\S+/invitations/[^/\s]+/")


def url(live_server, path: str) -> str:
    return f"{live_server.url}{path}"


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as e2e-<name>.png in $E2E_SCREENSHOT_DIR (default: the temp dir)."""
    path = Path(os.environ.get("E2E_SCREENSHOT_DIR") or tempfile.gettempdir()) / f"e2e-{name}.png"
    page.screenshot(path=path, full_page=True)
    return path


# --- E-mail -------------------------------------------------------------------------


def emails_to(address: str) -> list:
    return [m for m in mail.outbox if address.lower() in (r.lower() for r in m.to)]


def link_in_last_email(address: str, pattern: re.Pattern) -> str:
    """The first link matching ``pattern`` in the newest e-mail to ``address``."""
    messages = emails_to(address)
    assert messages, f"no e-mail to {address}; outbox: {[(m.to, m.subject) for m in mail.outbox]}"
    match = pattern.search(messages[-1].body)
    assert match, f"no link like {pattern.pattern} in the e-mail to {address}:\n{messages[-1].body}"
    return match.group(0)


# --- Accounts ----------------------------------------------------------------------------


def fill_signup_form(page: Page, email: str, password: str) -> None:
    """On /accounts/signup/: fill in and submit (the e-mail may be prefilled)."""
    expect(page.get_by_role("heading", name="Sign Up")).to_be_visible()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password:", exact=True).fill(password)
    page.get_by_label("Password (again)").fill(password)
    page.get_by_role("button", name="Sign Up").click()


def signup(page: Page, live_server, email: str, password: str) -> None:
    """Sign up; with mandatory verification this ends on "Verify Your Email Address"."""
    page.goto(url(live_server, "/accounts/signup/"))
    fill_signup_form(page, email, password)
    expect(page.get_by_role("heading", name="Verify Your Email Address")).to_be_visible()


def confirm_email(page: Page, live_server, email: str, password: str) -> None:
    """Open the confirmation link e-mailed to ``email``, confirm, log in if that did not."""
    link = link_in_last_email(email, CONFIRM_LINK)
    page.goto(link)
    expect(page.get_by_role("heading", name="Confirm Email Address")).to_be_visible()
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(lambda u: u != link)
    if not user_menu(page).is_visible():  # the page has loaded: no waiting needed
        login(page, live_server, email, password)
    expect_logged_in(page, email)


def signup_and_verify(page: Page, live_server, email: str, password: str) -> None:
    """Sign up, confirm the address from the e-mail, end logged in."""
    signup(page, live_server, email, password)
    confirm_email(page, live_server, email, password)


def login(page: Page, live_server, email: str, password: str, next_path: str = "") -> None:
    page.goto(url(live_server, "/accounts/login/" + (f"?next={next_path}" if next_path else "")))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password:", exact=True).fill(password)
    page.get_by_role("button", name="Sign In").click()
    expect_logged_in(page, email)


def logout(page: Page) -> None:
    open_user_menu(page).get_by_role("button", name="Log out").click()
    expect(page.get_by_role("banner").get_by_role("link", name="Log in")).to_be_visible()


# --- Header -------------------------------------------------------------------------------


def user_menu(page: Page):
    return page.locator("#user-menu")


def open_user_menu(page: Page):
    """Open the user menu (a <details>) and return it."""
    menu = user_menu(page)
    if menu.get_attribute("open") is None:
        menu.locator("summary").click()
    expect(menu).to_have_attribute("open", "")
    return menu


def expect_logged_in(page: Page, email: str) -> None:
    expect(user_menu(page).locator("summary")).to_have_text(email)


# --- Workspaces -----------------------------------------------------------------------------


def create_workspace(page: Page, live_server, name: str, slug: str = "") -> None:
    page.goto(url(live_server, "/workspaces/new/"))
    page.get_by_label("Name", exact=True).fill(name)
    if slug:
        page.get_by_label("Slug (optional)").fill(slug)
    page.get_by_role("button", name="Create workspace").click()
    expect(page.get_by_role("heading", level=1, name=name)).to_be_visible()
    expect(page.get_by_text("You are an admin of this workspace.")).to_be_visible()


def open_members_page(page: Page) -> None:
    """From any workspace page: User menu -> Admin console -> Members."""
    open_user_menu(page).get_by_role("link", name="Admin console").click()
    expect(page.get_by_role("heading", level=1, name="Admin console")).to_be_visible()
    page.get_by_role("navigation", name="Admin console").get_by_role("link", name="Members").click()
    expect(page.get_by_role("heading", level=1, name="Members")).to_be_visible()


def invite(page: Page, email: str, role: str = "member") -> str:
    """On the Members page: invite ``email``; returns the link from the invitation e-mail."""
    form = page.locator("#invite-form")
    form.get_by_label("E-mail address").fill(email)
    form.get_by_label("Role").select_option(role)
    form.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_role("status").filter(has_text=f"Invitation sent to {email}.")).to_be_visible()
    return link_in_last_email(email, INVITATION_LINK)


def members_row(page: Page, email: str):
    """The row of ``email`` in the Members page's member table."""
    return page.locator("#members").get_by_role("row").filter(has_text=email)
