"""Bad input gets a clear message and changes nothing (no row, no audit event, no e-mail)."""

import pytest
from django.core import mail

from tests.helpers import assert_error
from tests.workspaces.helpers import state

pytestmark = pytest.mark.django_db

TAKEN = "The slug “acme” is already taken; choose another."
BAD_SLUG_API = 'Enter a valid "slug" consisting of letters, numbers, underscores or hyphens.'
BAD_SLUG_FORM = "Use only lower-case letters, digits, hyphens and underscores in the slug."


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"name": "Acme again", "slug": "acme"}, "slug", TAKEN),
        ({"name": "Acme again", "slug": "ACME"}, "slug", TAKEN),
        ({"name": "Admin", "slug": "admin"}, "slug", "The slug “admin” is reserved; choose another."),
        ({"name": "Spaces", "slug": "not a slug!"}, "slug", BAD_SLUG_API),
        ({"name": "", "slug": "empty"}, "name", "This field may not be blank."),
        ({"name": "   ", "slug": "blank"}, "name", "This field may not be blank."),
        ({"slug": "nameless"}, "name", "This field is required."),
    ],
)
def test_workspace_with_bad_name_or_slug_is_not_created_through_the_api(team, api, body, field, message):
    before = state()
    response = api.as_user(team.bob).post("/api/v1/workspaces/", body, format="json")
    error = assert_error(response, 400, message, code="invalid")
    assert error["fields"][field] == [message]
    assert state() == before


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"name": "Acme again", "slug": "acme"}, TAKEN),
        ({"name": "Acme again", "slug": "Acme"}, TAKEN),
        ({"name": "Spaces", "slug": "not a slug!"}, BAD_SLUG_FORM),
        ({"name": "Admin", "slug": "admin"}, "The slug “admin” is reserved; choose another."),
        ({"name": "", "slug": "empty"}, "This field is required."),
        ({"name": "   ", "slug": "blank"}, "This field is required."),
    ],
)
def test_workspace_with_bad_name_or_slug_is_not_created_in_the_browser(team, client, form, message):
    client.force_login(team.bob)
    before = state()
    response = client.post("/workspaces/new/", form)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert state() == before


def test_workspace_without_slug_gets_a_free_one_made_from_its_name(team, client):
    client.force_login(team.bob)
    response = client.post("/workspaces/new/", {"name": "Acme", "slug": ""})
    assert response.status_code == 302
    assert response["Location"] == "/w/acme-2/"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "This field may not be blank."),
        ("x" * 101, "Ensure this field has no more than 100 characters."),
    ],
)
def test_workspace_rename_with_bad_name_changes_nothing(team, api, name, message):
    before = state()
    response = api.as_user(team.alice).patch("/api/v1/workspaces/acme/", {"name": name}, format="json")
    assert_error(response, 400, message)
    assert state() == before


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"email": "not-an-email", "role": "member"}, "Enter a valid e-mail address."),
        ({"email": "", "role": "member"}, "This field may not be blank."),
        (
            {"email": "erin@example.com", "role": "member"},
            "erin@example.com already has a pending invitation; resend it, or withdraw it to invite again.",
        ),
        (
            {"email": "ERIN@example.com", "role": "admin"},
            "erin@example.com already has a pending invitation; resend it, or withdraw it to invite again.",
        ),
        ({"email": "bob@example.com", "role": "member"}, "bob@example.com is already a member of this workspace."),
        ({"email": "dave@example.com", "role": "owner"}, '"owner" is not a valid choice.'),
    ],
)
def test_invitation_with_bad_input_is_not_created_through_the_api(
    team, ids, api, django_capture_on_commit_callbacks, body, message
):
    before = state()
    with django_capture_on_commit_callbacks(execute=True):
        response = api.as_user(team.alice).post("/api/v1/workspaces/acme/invitations/", body, format="json")
    assert_error(response, 400, message, code="invalid")
    assert state() == before
    assert mail.outbox == []


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"email": "not-an-email", "role": "member"}, "Enter a valid e-mail address."),
        (
            {"email": "erin@example.com", "role": "member"},
            "erin@example.com already has a pending invitation; resend it, or withdraw it to invite again.",
        ),
        ({"email": "bob@example.com", "role": "member"}, "bob@example.com is already a member of this workspace."),
    ],
)
def test_invitation_with_bad_input_is_not_created_in_the_browser(
    team, ids, client, django_capture_on_commit_callbacks, form, message
):
    client.force_login(team.alice)
    before = state()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/w/acme/admin/members/", form)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert state() == before
    assert mail.outbox == []


def test_revoked_invitation_can_be_sent_again(team, ids, api):
    client = api.as_user(team.alice)
    client.delete(f"/api/v1/workspaces/acme/invitations/{ids.acme.invitation.id}/")
    response = client.post("/api/v1/workspaces/acme/invitations/", {"email": "erin@example.com"}, format="json")
    assert response.status_code == 201


def test_revoking_an_invitation_twice_says_it_is_already_revoked(team, ids, api):
    client = api.as_user(team.alice)
    url = f"/api/v1/workspaces/acme/invitations/{ids.acme.invitation.id}/"
    client.delete(url)
    before = state()
    assert_error(client.delete(url), 400, "This invitation is already revoked.")
    assert state() == before
