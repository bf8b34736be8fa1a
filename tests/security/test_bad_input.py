"""Bad input gets a 4xx in the API's error shape and changes nothing: never a 500."""

import json
import smtplib

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.test import Client

from audit.models import AuditEvent
from audit.services import Actor
from connections.models import Connection, ConnectionEvent
from connections.services import connection_create
from oauthclients.models import OAuthClient
from oauthclients.services import oauth_client_create
from workspaces.models import ApiKey, Invitation, Membership, Workspace

pytestmark = pytest.mark.django_db


def snapshot() -> dict:
    """Every row a refused request could have written."""
    return {
        "workspaces": sorted(Workspace.objects.values_list("slug", "name")),
        "memberships": Membership.objects.count(),
        "invitations": sorted(Invitation.objects.values_list("email", flat=True)),
        "api_keys": sorted(ApiKey.objects.values_list("name", flat=True)),
        "oauth_clients": sorted(OAuthClient.objects.values_list("name", "client_id", "token_url", "scopes")),
        "connections": sorted(Connection.objects.values_list("name", flat=True)),
        "connection_events": ConnectionEvent.objects.count(),
        "audit_events": AuditEvent.objects.count(),
    }


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content[:500]
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) <= {"code", "message", "fields"}, body
    error = body["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert "ErrorDetail" not in response.content.decode() and "{" not in error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


@pytest.fixture
def books(team):
    client = oauth_client_create(
        workspace=team.a,
        actor=Actor(user=team.alice),
        provider="generic",
        name="CRM",
        client_id="crm",
        client_secret="crm-secret",
        authorization_url="https://login.example.com/authorize",
        token_url="https://login.example.com/token",
        access_token_expires_in=3_600_000,
        refresh_token_expires_in=0,
    )
    return connection_create(
        workspace=team.a, oauth_client=client, name="Books", owner=team.alice, actor=Actor(user=team.alice)
    )


# --- Control characters in names -------------------------------------------------------------

CONTROL = {
    "CR LF": "Acme\r\nBcc: everyone@example.com",
    "LF": "Acme\nInc",
    "NUL": "Acme\x00Inc",
    "tab": "Acme\tInc",
    "escape": "Acme\x1b[31mInc",
    "DEL": "Acme\x7fInc",
    "C1 next line": "Acme\x85Inc",
    "line separator": "Acme\u2028Inc",
}


def name_requests(team, books) -> dict:
    """(method, url, body, field with the bad value) for every name a person or key can type."""
    oauth_client = OAuthClient.objects.get()
    client_body = {
        "provider": "generic",
        "client_id": "other",
        "client_secret": "s3cret",
        "authorization_url": "https://login.example.com/authorize",
        "token_url": "https://login.example.com/token",
        "access_token_expires_in": 3600000,
        "refresh_token_expires_in": 0,
    }
    return {
        "workspace create": ("post", "/api/v1/workspaces/", {}, "name"),
        "workspace rename": ("patch", "/api/v1/workspaces/acme/", {}, "name"),
        "connection create": (
            "post",
            "/api/v1/workspaces/acme/connections/",
            {"oauth_client": str(oauth_client.id)},
            "name",
        ),
        "connection rename": ("patch", f"/api/v1/workspaces/acme/connections/{books.id}/", {}, "name"),
        "oauth client name": ("post", "/api/v1/workspaces/acme/oauth-clients/", client_body, "name"),
        "oauth client id": (
            "post",
            "/api/v1/workspaces/acme/oauth-clients/",
            {**client_body, "name": "X"},
            "client_id",
        ),
        "oauth client token url": (
            "patch",
            f"/api/v1/workspaces/acme/oauth-clients/{oauth_client.id}/",
            {},
            "token_url",
        ),
        "api key name": ("post", "/api/v1/workspaces/acme/api-keys/", {"scopes": ["read"]}, "name"),
        "invitation e-mail": ("post", "/api/v1/workspaces/acme/invitations/", {}, "email"),
    }


TARGETS = [
    "workspace create",
    "workspace rename",
    "connection create",
    "connection rename",
    "oauth client name",
    "oauth client id",
    "oauth client token url",
    "api key name",
    "invitation e-mail",
]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("kind", CONTROL)
def test_control_characters_in_a_name_are_refused_with_a_field_error(team, books, api, target, kind):
    method, url, body, field = name_requests(team, books)[target]
    value = CONTROL[kind]
    if field == "email":
        value = value.replace("Acme", "dave@example.com", 1)
    elif field == "token_url":
        value = value.replace("Acme", "https://login.example.com/token", 1)
    before = snapshot()

    response = getattr(api.as_user(team.alice), method)(url, {**body, field: value}, format="json")

    error = assert_error(response, 400)
    assert field in error["fields"], error
    assert snapshot() == before
    assert mail.outbox == []


@pytest.mark.parametrize("kind", ["NUL", "escape", "DEL"])
def test_control_characters_in_scopes_are_refused(team, books, api, kind):
    before = snapshot()
    url = f"/api/v1/workspaces/acme/oauth-clients/{OAuthClient.objects.get().id}/"

    response = api.as_user(team.alice).patch(url, {"scopes": CONTROL[kind].lower()}, format="json")

    assert "scopes" in assert_error(response, 400)["fields"]
    assert snapshot() == before


def test_line_breaks_between_scopes_are_separators(team, books, api):
    url = f"/api/v1/workspaces/acme/oauth-clients/{OAuthClient.objects.get().id}/"
    response = api.as_user(team.alice).patch(url, {"scopes": "read\r\nwrite\tadmin\u2028sync"}, format="json")
    assert response.status_code == 200
    assert OAuthClient.objects.get().scopes == "read write admin sync"


def test_a_workspace_name_with_a_line_break_is_refused_on_the_settings_page(team):
    browser = Client()
    browser.force_login(team.alice)

    response = browser.post("/w/acme/admin/settings/", {"name": "Acme\r\nBcc: everyone@example.com"})

    assert response.status_code == 200
    assert "The name cannot contain line breaks, tabs or other control characters." in response.content.decode()
    assert Workspace.objects.get(slug="acme").name == "Acme"


# --- Invitation e-mails that cannot be sent --------------------------------------------------


class BrokenMailServer(BaseEmailBackend):
    def send_messages(self, email_messages):
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


@pytest.fixture
def broken_mail(settings):
    settings.EMAIL_BACKEND = f"{__name__}.BrokenMailServer"


@pytest.mark.django_db(transaction=True)
def test_an_invitation_whose_email_fails_is_withdrawn_and_reported(team, api, broken_mail):
    before = snapshot()

    response = api.as_user(team.alice).post(
        "/api/v1/workspaces/acme/invitations/", {"email": "dave@example.com"}, format="json"
    )

    error = assert_error(response, 503, code="email_failed")
    assert error["message"].startswith("The invitation e-mail to dave@example.com could not be sent")
    assert not Invitation.objects.exists()  # nothing pending that nobody was told about
    after = snapshot()
    assert {k: v for k, v in after.items() if k != "audit_events"} == {
        k: v for k, v in before.items() if k != "audit_events"
    }
    assert list(AuditEvent.objects.order_by("created_at").values_list("action", flat=True))[-2:] == [
        "invitation.created",
        "invitation.email_failed",
    ]


@pytest.mark.django_db(transaction=True)
def test_the_members_page_says_when_the_invitation_email_fails(team, broken_mail):
    browser = Client()
    browser.force_login(team.alice)

    response = browser.post("/w/acme/admin/members/", {"email": "dave@example.com", "role": "member"})

    assert response.status_code == 200
    assert "could not be sent, so no invitation was made" in response.content.decode()
    assert not Invitation.objects.exists()


# --- Bodies the parser must refuse --------------------------------------------------------------


@pytest.mark.parametrize("depth", [40, 1_000, 100_000])
def test_json_nested_too_deep_answers_400(team, api, depth):
    before = snapshot()
    body = '{"name": ' + "[" * depth + "]" * depth + "}"

    response = api.as_user(team.alice).post("/api/v1/workspaces/", body, content_type="application/json")

    error = assert_error(response, 400, code="parse_error")
    assert "nested deeper than 32 levels" in error["message"]
    assert snapshot() == before


def test_json_nested_a_little_is_fine(team, api):
    response = api.as_user(team.alice).post(
        "/api/v1/workspaces/acme/api-keys/", {"name": "ETL", "scopes": ["read"]}, format="json"
    )
    assert response.status_code == 201


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
def test_an_oversize_body_answers_413(team, api, settings, content_type):
    before = snapshot()
    body = json.dumps({"name": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)})
    if content_type != "application/json":
        body = "name=" + "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)

    response = api.as_user(team.alice).post("/api/v1/workspaces/", body, content_type=content_type)

    error = assert_error(response, 413, code="too_large")
    assert error["message"] == (
        f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes, the most this API accepts."
    )
    assert snapshot() == before


def test_an_oversize_multipart_field_answers_413(team, api, settings):
    before = snapshot()
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api.as_user(team.alice).post("/api/v1/workspaces/", {"name": "x" * 2000}, format="multipart")

    assert_error(response, 413, code="too_large")
    assert snapshot() == before


# --- Error messages are sentences, never Python reprs ------------------------------------------


def test_a_bad_item_in_a_list_is_named_by_its_position(team, api):
    before = snapshot()
    response = api.as_user(team.alice).post(
        "/api/v1/workspaces/acme/api-keys/", {"name": "ETL", "scopes": ["read", "bogus"]}, format="json"
    )

    error = assert_error(response, 400, code="invalid")
    assert error["fields"] == {"scopes": ['[1]: "bogus" is not a valid choice.']}
    assert error["message"] == '[1]: "bogus" is not a valid choice.'
    assert snapshot() == before


def test_a_name_stored_before_line_breaks_were_refused_cannot_break_a_notification(team, books):
    """Rows from before the rule: the e-mail subject is still one header line."""
    from connections.notifications import _send

    Connection.objects.filter(pk=books.pk).update(name="Books\r\nBcc: everyone@example.com")
    books.refresh_from_db()

    _send(books, "connections/email/recovered.txt", f"[Tokenkeeper] Connection “{books.name}” works again")

    assert [m.subject for m in mail.outbox] == [
        "[Tokenkeeper] Connection “Books Bcc: everyone@example.com” works again"
    ] * len(mail.outbox)
    assert mail.outbox and all(m.extra_headers == {} and m.bcc == [] for m in mail.outbox)
