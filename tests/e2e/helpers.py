"""Page-level steps for browser tests, shared by the tests in tests/e2e.

Every helper takes the Playwright ``page`` of one person (see the
``new_person`` fixture) and, where it navigates, pytest-django's
``live_server``. They assert what a person would see, with ``expect`` (which
waits), so a failure points at the step that went wrong. On a phone-sized
page (``new_person("phone")``) they tap instead of clicking (``press``), and
open the header's collapsed menu first.

E-mails are read from ``django.core.mail.outbox``: the live server runs in a
thread of the test process and the test settings use the locmem backend.

``screenshot`` saves to ``SCREENSHOT_DIR`` (``var/screenshots/`` unless
``E2E_SCREENSHOT_DIR`` says otherwise); ``axe_violations`` runs axe-core
(vendored in ``tests/e2e/vendor/axe-core``) in the page.
"""

import os
import re
from pathlib import Path

from django.conf import settings
from django.core import mail
from playwright.sync_api import Locator, Page, expect

CONFIRM_LINK = re.compile(r"https?://\S+/accounts/confirm-email/[^/\s]+/")
INVITATION_LINK = re.compile(r"https?://\S+/invitations/[^/\s]+/")
SCREENSHOT_DIR = Path(os.environ.get("E2E_SCREENSHOT_DIR") or Path(settings.BASE_DIR) / "var" / "screenshots")
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
PHONE_WIDTH = 700  # narrower than this: a phone (the header collapses below 760 px)


def url(live_server, path: str) -> str:
    return f"{live_server.url}{path}"


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as <name>.png in SCREENSHOT_DIR."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path


# --- Phones --------------------------------------------------------------------------------


def is_phone(page: Page) -> bool:
    return page.viewport_size["width"] < PHONE_WIDTH


def press(page: Page, locator: Locator) -> None:
    """Tap on a phone, click elsewhere: both fail if something covers the control."""
    if is_phone(page):
        locator.tap()
    else:
        locator.click()


def open_header_menu(page: Page) -> None:
    """On a phone, open the collapsed header menu (a no-op on wider screens)."""
    toggle = page.locator("header .nav-toggle")
    if toggle.is_visible() and toggle.get_attribute("aria-expanded") != "true":
        press(page, toggle)
        expect(toggle).to_have_attribute("aria-expanded", "true")


def main_nav(page: Page) -> Locator:
    open_header_menu(page)
    return page.get_by_role("navigation", name="Main")


def page_width(page: Page) -> int:
    """How wide the page's content is (wider than the viewport means sideways scrolling)."""
    return page.evaluate("Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)")


def overflowing(page: Page, limit: int = 3) -> list[str]:
    """The innermost elements that stick out past the viewport's right edge (to say what is too wide)."""
    return page.evaluate(
        r"""(limit) => {
            const width = document.documentElement.clientWidth;
            const clipped = (el) => {  // inside a container that scrolls or clips sideways
                for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
                    if (getComputedStyle(up).overflowX !== "visible") return true;
                }
                return false;
            };
            const out = [...document.body.querySelectorAll("*")].filter((el) => {
                const box = el.getBoundingClientRect();
                return box.right > width + 1 && box.width > 0 && !clipped(el);
            });
            const innermost = out.filter((el) => !out.some((other) => other !== el && el.contains(other)));
            return innermost.slice(0, limit).map((el) =>
                `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}${el.className && el.className.baseVal === undefined
                    ? "." + String(el.className).trim().split(/\s+/).join(".") : ""} (${Math.round(el.getBoundingClientRect().right)} px)`);
        }""",
        limit,
    )


def expect_fits(page: Page) -> None:
    width = page_width(page)
    assert width <= page.viewport_size["width"], (
        f"{page.url} is {width} px wide at {page.viewport_size['width']} px: {overflowing(page)}"
    )


def axe_violations(page: Page, impacts=("serious", "critical")) -> list[dict]:
    """axe-core's violations of ``impacts`` on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ["violations"]});
            return result.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ")),
            }));
        }"""
    )
    return [v for v in found if v["impact"] in impacts]


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
    expect(page.get_by_role("heading", name="Sign up")).to_be_visible()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Password (again)").fill(password)
    press(page, page.get_by_role("main").get_by_role("button", name="Sign up"))


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
    press(page, page.get_by_role("button", name="Confirm"))
    page.wait_for_url(lambda u: u != link)
    if not user_menu(page).count():  # the page has loaded: no waiting needed
        login(page, live_server, email, password)
    expect_logged_in(page, email)


def signup_and_verify(page: Page, live_server, email: str, password: str) -> None:
    """Sign up, confirm the address from the e-mail, end logged in."""
    signup(page, live_server, email, password)
    confirm_email(page, live_server, email, password)


def login(page: Page, live_server, email: str, password: str, next_path: str = "") -> None:
    page.goto(url(live_server, "/accounts/login/" + (f"?next={next_path}" if next_path else "")))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    press(page, page.get_by_role("main").get_by_role("button", name="Log in"))
    expect_logged_in(page, email)


def logout(page: Page) -> None:
    press(page, open_user_menu(page).get_by_role("button", name="Log out"))
    expect(page.get_by_role("banner").get_by_role("link", name="Log in")).to_be_visible()


# --- Header -------------------------------------------------------------------------------


def user_menu(page: Page):
    return page.locator("#user-menu")


def open_user_menu(page: Page):
    """Open the user menu (a <details>; on a phone inside the collapsed header menu) and return it."""
    open_header_menu(page)
    menu = user_menu(page)
    if menu.get_attribute("open") is None:
        press(page, menu.locator("summary"))
    expect(menu).to_have_attribute("open", "")
    return menu


def expect_logged_in(page: Page, email: str) -> None:
    expect(user_menu(page).locator("summary")).to_have_text(email)


def open_admin_console(page: Page) -> None:
    """Main navigation -> Admin console."""
    press(page, main_nav(page).get_by_role("link", name="Admin console"))
    expect(page.get_by_role("heading", level=1, name="Admin console")).to_be_visible()


def open_console_page(page: Page, name: str) -> None:
    """Admin console -> one of its pages (its own navigation), from any workspace page."""
    open_admin_console(page)
    press(page, page.get_by_role("navigation", name="Admin console").get_by_role("link", name=name))
    expect(page.get_by_role("heading", level=1, name=name)).to_be_visible()


# --- Workspaces -----------------------------------------------------------------------------


def create_workspace(page: Page, live_server, name: str, slug: str = "") -> None:
    page.goto(url(live_server, "/workspaces/new/"))
    page.get_by_label("Name", exact=True).fill(name)
    if slug:
        page.get_by_label("Slug (optional)").fill(slug)
    press(page, page.get_by_role("button", name="Create workspace"))
    expect(page.get_by_role("heading", level=1, name=name)).to_be_visible()
    expect(page.get_by_text("You are an admin of this workspace.")).to_be_visible()


def open_members_page(page: Page) -> None:
    """From any workspace page: Admin console -> Members."""
    open_console_page(page, "Members")


def invite(page: Page, email: str, role: str = "member") -> str:
    """On the Members page: invite ``email``; returns the link from the invitation e-mail."""
    form = page.locator("#invite-form")
    form.get_by_label("E-mail address").fill(email)
    form.get_by_label("Role").select_option(role)
    press(page, form.get_by_role("button", name="Send invitation"))
    expect(page.get_by_role("status").filter(has_text=f"Invitation sent to {email}.")).to_be_visible()
    return link_in_last_email(email, INVITATION_LINK)


def members_row(page: Page, email: str):
    """The row of ``email`` in the Members page's member table."""
    return page.locator("#members").get_by_role("row").filter(has_text=email)
