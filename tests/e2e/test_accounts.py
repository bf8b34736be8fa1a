"""Sign-up with mandatory e-mail verification, log out and back in."""

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import confirm_email, create_workspace, login, logout, signup, url

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EMAIL = "grace@example.com"
PASSWORD = "correct-horse-battery-9"


def test_confirm_in_another_browser_then_log_in_and_out(live_server, new_person):
    laptop, phone = new_person(), new_person()

    signup(laptop, live_server, EMAIL, PASSWORD)
    # Unconfirmed: the app itself stays closed.
    laptop.goto(url(live_server, "/workspaces/new/"))
    expect(laptop.get_by_role("heading", name="Log in")).to_be_visible()

    # Confirmed from another browser (no pending sign-up there): it asks to log in.
    confirm_email(phone, live_server, EMAIL, PASSWORD)
    expect(phone).to_have_url(url(live_server, "/workspaces/new/"))
    create_workspace(phone, live_server, "Grace Labs")

    logout(phone)
    expect(phone.get_by_role("heading", name="Keep every OAuth 2.0 connection alive")).to_be_visible()
    login(phone, live_server, EMAIL, PASSWORD)
    expect(phone).to_have_url(url(live_server, "/w/grace-labs/"))
