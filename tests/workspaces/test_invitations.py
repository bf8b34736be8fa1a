"""Invitations: e-mailed link, sign-up or log-in, accept once; unusable links say why and change nothing."""

import re
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.test import Client

from tests.factories import PASSWORD
from tests.workspaces.helpers import expire, state
from workspaces.models import Invitation, Membership

pytestmark = pytest.mark.django_db


def link_in(message) -> str:
    """The path of the invitation link in an e-mail."""
    url = re.search(r"https?://\S+/invitations/\S+/", message.body).group(0)
    return urlsplit(url).path


@pytest.fixture
def invite(team, client, django_capture_on_commit_callbacks):
    """Alice invites someone from the Members page; returns the link's path from the e-mail."""

    def invite(email: str, role: str = "member", workspace: str = "acme", admin=team.alice) -> str:
        client.force_login(admin)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(f"/w/{workspace}/admin/members/", {"email": email, "role": role})
        assert response.status_code == 302
        client.logout()
        sent = mail.outbox
        mail.outbox = []  # tests count only the mail that follows
        assert [m.to for m in sent] == [[email]]
        return link_in(sent[0])

    return invite


def sign_up(client, email: str, next_path: str):
    return client.post(
        f"/accounts/signup/?next={next_path}", {"email": email, "password1": PASSWORD, "password2": PASSWORD}
    )


def signed_in_email(client) -> str | None:
    response = client.get("/accounts/email/")
    return response.context["user"].email if response.status_code == 200 else None


# --- The e-mail ------------------------------------------------------------------------


def test_invitation_email_carries_the_accept_link(team, api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.as_user(team.alice).post(
            "/api/v1/workspaces/acme/invitations/", {"email": "Dave@Example.com", "role": "admin"}, format="json"
        )
    assert response.status_code == 201
    [message] = mail.outbox
    assert message.to == ["dave@example.com"]
    assert message.subject == "[Tokenkeeper] You are invited to Acme"
    assert 'alice@example.com invited you to join the workspace "Acme" on Tokenkeeper as admin.' in message.body
    assert response.json()["accept_url"] in message.body


def test_invitation_email_waits_until_the_invitation_is_committed(team, api):
    api.as_user(team.alice).post("/api/v1/workspaces/acme/invitations/", {"email": "dave@example.com"}, format="json")
    assert mail.outbox == []


# --- Accepting -------------------------------------------------------------------------------


def test_anonymous_invitee_sees_sign_up_and_log_in_links(team, client, invite):
    link = invite("dave@example.com")
    page = client.get(link).content.decode()
    assert "Join Acme" in page
    assert "Create an account with <strong>dave@example.com</strong>" in page
    assert f'href="/accounts/signup/?next={link}"' in page
    assert f'href="/accounts/login/?next={link}"' in page


def test_invitee_signs_up_without_a_verification_email_and_joins(team, client, invite):
    link = invite("dave@example.com", role="admin")
    client.get(link)
    response = sign_up(client, "dave@example.com", link)
    assert response["Location"] == link
    assert mail.outbox == []
    assert signed_in_email(client) == "dave@example.com"
    page = client.get(link).content.decode()
    assert "Accept invitation" in page
    response = client.post(link, follow=True)
    assert response.redirect_chain == [("/w/acme/", 302)]
    assert "Welcome to “Acme”." in response.content.decode()
    assert Membership.objects.get(workspace=team.a, user__email="dave@example.com").role == "admin"


def test_opening_the_link_in_another_browser_does_not_skip_verification(team, client, invite):
    link = invite("dave@example.com")
    Client().get(link)
    response = sign_up(client, "dave@example.com", link)
    assert response["Location"] == "/accounts/confirm-email/"
    assert signed_in_email(client) is None
    assert [m.to for m in mail.outbox] == [["dave@example.com"]]


def test_sign_up_without_opening_the_link_needs_verification(team, client):
    response = sign_up(client, "dave@example.com", "/")
    assert response["Location"] == "/accounts/confirm-email/"
    assert signed_in_email(client) is None
    assert [m.to for m in mail.outbox] == [["dave@example.com"]]


def test_existing_user_logs_in_and_joins(team, client, invite):
    link = invite("bob@example.com", workspace="globex", admin=team.charlie)
    response = client.post(f"/accounts/login/?next={link}", {"login": "bob@example.com", "password": PASSWORD})
    assert response["Location"] == link
    client.post(link)
    assert Membership.objects.get(workspace=team.b, user=team.bob).role == "member"
    assert client.get("/w/globex/").status_code == 200


def test_anonymous_accept_is_sent_to_log_in(team, client, invite):
    link = invite("dave@example.com")
    before = state()
    response = client.post(link)
    assert response["Location"] == f"/accounts/login/?next={link}"
    assert state() == before


# --- Unusable links ----------------------------------------------------------------------------


def let_it_expire(team, client, link) -> str:
    expire(Invitation.objects.get())
    return link


def use_it(team, client, link) -> str:
    client.force_login(team.bob)
    client.post(link)
    client.logout()
    return link


def withdraw_it(team, client, link) -> str:
    client.force_login(team.alice)
    client.post(f"/w/acme/admin/invitations/{Invitation.objects.get().id}/revoke/")
    client.logout()
    return link


def mistype_it(team, client, link) -> str:
    return link[:-5] + "xxxx/"


@pytest.mark.parametrize(
    ("spoil", "message", "status"),
    [
        (let_it_expire, "This invitation has expired. Ask for a new invitation.", 410),
        (use_it, "This invitation has already been used.", 410),
        (withdraw_it, "This invitation was withdrawn. Ask for a new invitation.", 410),
        (mistype_it, "This invitation link is not valid. Ask for a new invitation.", 404),
    ],
    ids=lambda v: getattr(v, "__name__", None),
)
def test_unusable_invitation_says_why_and_changes_nothing(team, client, invite, spoil, message, status):
    Membership.objects.filter(user=team.bob).delete()
    link = spoil(team, client, invite("bob@example.com"))
    client.force_login(team.bob)
    before = state()

    page = client.get(link)
    assert page.status_code == status
    assert message in page.content.decode()
    assert "Accept invitation" not in page.content.decode()

    response = client.post(link, follow=True)
    assert response.redirect_chain == [(link, 302)]
    assert message in response.content.decode()
    assert state() == before


def test_invitation_for_another_address_is_refused_to_a_signed_in_user(team, client, invite):
    link = invite("dave@example.com")
    client.force_login(team.charlie)
    before = state()
    message = (
        "This invitation is for dave@example.com, but you are signed in as charlie@example.com. "
        "Sign in with the invited address to accept it."
    )
    assert message in client.get(link).content.decode()
    response = client.post(link, follow=True)
    assert message in response.content.decode()
    assert state() == before
    assert not Membership.objects.filter(workspace=team.a, user=team.charlie).exists()


def test_opening_an_unusable_link_does_not_skip_verification(team, client, invite):
    link = invite("dave@example.com")
    expire(Invitation.objects.get())
    client.get(link)
    sign_up(client, "dave@example.com", link)
    assert signed_in_email(client) is None
    assert [m.to for m in mail.outbox] == [["dave@example.com"]]
