"""Acceptance: sign up, create a workspace, invite a second user, who signs up
through the invitation and sees the workspace as a member; the member cannot
reach admin-only pages."""

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import (
    create_workspace,
    emails_to,
    expect_logged_in,
    fill_signup_form,
    invite,
    members_row,
    open_members_page,
    open_user_menu,
    screenshot,
    signup_and_verify,
    url,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ADMIN_EMAIL = "ada@example.com"
MEMBER_EMAIL = "max@example.com"
PASSWORD = "correct-horse-battery-9"
ADMIN_ONLY = ["admin/", "admin/members/", "admin/api-keys/", "admin/audit/", "admin/settings/"]


def test_invited_member_joins_and_is_kept_out_of_admin_pages(live_server, new_person):
    admin = new_person()
    member = new_person()

    # The first user signs up, confirms the e-mail address and creates a workspace.
    signup_and_verify(admin, live_server, ADMIN_EMAIL, PASSWORD)
    create_workspace(admin, live_server, "Acme Finance", slug="acme")
    open_members_page(admin)
    invitation_link = invite(admin, MEMBER_EMAIL)
    assert invitation_link.startswith(f"{live_server.url}/invitations/")
    expect(admin.locator("#invitations")).to_contain_text(MEMBER_EMAIL)

    # The second person opens the e-mailed link and signs up from there.
    member.goto(invitation_link)
    expect(member.get_by_role("heading", name="Join Acme Finance")).to_be_visible()
    member.get_by_role("main").get_by_role("link", name="Sign up").click()
    expect(member.get_by_label("Email")).to_have_value(MEMBER_EMAIL)
    fill_signup_form(member, MEMBER_EMAIL, PASSWORD)

    # The invited address counts as verified: straight back to the invitation.
    expect(member).to_have_url(invitation_link)
    expect_logged_in(member, MEMBER_EMAIL)
    assert len(emails_to(MEMBER_EMAIL)) == 1, "the invited address was sent a confirmation e-mail too"
    member.get_by_role("button", name="Accept invitation").click()

    expect(member).to_have_url(url(live_server, "/w/acme/"))
    expect(member.get_by_role("status")).to_have_text("Welcome to “Acme Finance”.")
    expect(member.get_by_role("heading", level=1, name="Acme Finance")).to_be_visible()
    expect(member.get_by_text("You are a member of this workspace.")).to_be_visible()
    expect(member.get_by_role("navigation", name="Main").get_by_role("link", name="Connections")).to_be_visible()
    expect(member.get_by_role("link", name="Admin console")).to_have_count(0)
    expect(member.get_by_role("link", name="Manage members")).to_have_count(0)
    menu = open_user_menu(member)
    expect(menu.get_by_role("link", name="E-mail addresses")).to_be_visible()
    screenshot(member, "invitation-member-overview")

    # Admin-only pages answer 403 to the member.
    for path in ADMIN_ONLY:
        response = member.goto(url(live_server, f"/w/acme/{path}"))
        assert response is not None
        assert response.status == 403, f"/w/acme/{path} answered {response.status} to a member"
        expect(member.get_by_role("heading", name="Not allowed")).to_be_visible()
        # The page keeps the workspace: its header and a way back.
        expect(member.locator("#workspace-switcher summary")).to_contain_text("Acme Finance")
        expect(member.get_by_role("link", name="Back to Acme Finance")).to_be_visible()
    screenshot(member, "invitation-member-403")

    # The admin sees the new member and no pending invitation any more.
    admin.reload()
    row = members_row(admin, MEMBER_EMAIL)
    expect(row).to_be_visible()
    expect(row.get_by_label(f"Role of {MEMBER_EMAIL}")).to_have_value("member")
    expect(members_row(admin, ADMIN_EMAIL)).to_contain_text("(you)")
    expect(admin.locator("#invitations")).to_have_count(0)
    expect(admin.get_by_text("No pending invitations.")).to_be_visible()
    screenshot(admin, "invitation-admin-members")
