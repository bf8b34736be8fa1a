"""Browser tests: Playwright drives Debian's Chromium against ``live_server``.

Fixtures (see ``tests/e2e/helpers.py`` for the page-level helpers):

- ``live_server`` (pytest-django) serves the app from a thread of this process,
  so ``django.core.mail.outbox`` (locmem backend) is shared with the test. Tests
  here need ``@pytest.mark.django_db(transaction=True)``: the server thread sees
  only committed data, and ``transaction.on_commit`` callbacks (e-mails) fire.
- ``_e2e_environment`` (autouse) points ``settings.PUBLIC_BASE_URL`` at the live
  server (links in e-mails), and clears the cache (allauth's rate limits);
  pytest-django empties the outbox before each test.
- ``new_person()`` opens a page in a fresh browser context: one call per person,
  each with its own cookies and session; ``new_person("phone")`` a phone-sized one.

The tests are skipped when /usr/bin/chromium is missing, except with
``CI=true``, where that is an error. ``E2E_CHROMIUM`` points at another binary.
"""

import os
from pathlib import Path

import pytest
from django.core.cache import cache
from playwright.sync_api import expect

# Playwright's sync API keeps an asyncio loop in the main thread; Django would
# refuse database access from it (pytest-django's flush, helpers reading rows).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path(os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000

expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="session", autouse=True)
def chromium_executable() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        message = f"{CHROMIUM} is missing: apt-get install chromium to run the browser tests."
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the browser tests, but {message}", pytrace=False)
        pytest.skip(message)
    return str(CHROMIUM)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args, chromium_executable):
    """pytest-playwright's launch options plus Debian's Chromium (--headed still works)."""
    return {
        "headless": True,
        **browser_type_launch_args,
        "executable_path": chromium_executable,
        "args": CHROMIUM_ARGS,
    }


@pytest.fixture(scope="session")
def base_url(live_server):
    """Contexts get the live server as base URL: ``page.goto("/w/acme/")`` works."""
    return live_server.url


# The two sizes every page is checked at: a laptop, and a phone (tapped, not clicked).
DEVICES = {
    "desktop": {"viewport": {"width": 1280, "height": 900}},
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "locale": "en-US"}


@pytest.fixture(autouse=True)
def _e2e_environment(live_server, settings):
    settings.PUBLIC_BASE_URL = live_server.url
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def new_person(new_context):
    """``new_person(device="desktop")`` -> a Page in its own browser context (its own cookies).

    ``device="phone"`` gives a 390 px wide touch screen (``DEVICES``); the
    helpers then tap instead of clicking. pytest-playwright closes the
    contexts (and keeps traces/screenshots with ``--tracing``/``--screenshot``)
    after the test.
    """

    def _new_person(device: str = "desktop"):
        context = new_context(**DEVICES[device])
        context.set_default_timeout(TIMEOUT_MS)
        return context.new_page()

    return _new_person
