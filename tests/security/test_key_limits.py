"""API keys cannot change workspace settings; responses that show a new secret are never cached."""

import pytest
from django.test import Client

from audit.models import AuditEvent
from audit.services import Actor
from connections.services import connection_create
from oauthclients.services import oauth_client_create
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("scopes", [["write"], ["read", "write", "tokens"]])
def test_a_write_key_cannot_rename_the_workspace(team, api, key_factory, scopes):
    raw = key_factory(team.a, scopes=scopes)
    events = AuditEvent.objects.count()

    response = api.as_key(raw).patch("/api/v1/workspaces/acme/", {"name": "Renamed by a script"}, format="json")

    assert response.status_code == 403
    assert response.json() == {
        "error": {
            "code": "permission_denied",
            "message": "API keys cannot change workspace settings; sign in as a workspace admin.",
        }
    }
    assert Workspace.objects.get(slug="acme").name == "Acme"
    assert AuditEvent.objects.count() == events


def test_a_key_of_another_workspace_still_gets_404(team, api, key_factory):
    raw = key_factory(team.b, scopes=["write"])
    response = api.as_key(raw).patch("/api/v1/workspaces/acme/", {"name": "Renamed"}, format="json")
    assert response.status_code == 404
    assert Workspace.objects.get(slug="acme").name == "Acme"


def test_a_read_key_still_reads_the_workspace_and_an_admin_still_renames_it(team, api, key_factory):
    response = api.as_key(key_factory(team.a, scopes=["read"])).get("/api/v1/workspaces/acme/")
    assert response.status_code == 200 and response.json()["name"] == "Acme"

    response = api.as_user(team.alice).patch("/api/v1/workspaces/acme/", {"name": "Acme Finance"}, format="json")
    assert response.status_code == 200 and Workspace.objects.get(slug="acme").name == "Acme Finance"


def test_a_new_api_key_is_never_cached(team, api):
    response = api.as_user(team.alice).post(
        "/api/v1/workspaces/acme/api-keys/", {"name": "ETL", "scopes": ["read"]}, format="json"
    )
    assert response.status_code == 201 and response.json()["key"].startswith("tk_")
    assert response["Cache-Control"] == "no-store"

    browser = Client()
    browser.force_login(team.alice)
    created = browser.post("/w/acme/admin/api-keys/", {"name": "Nightly", "scopes": ["read"]})
    assert created.status_code == 302 and "tk_" not in created.content.decode()  # shown on the next page
    page = browser.get(created["Location"])
    assert page.status_code == 200 and 'id="new-key-value">tk_' in page.content.decode()
    assert "no-store" in page["Cache-Control"]


def test_other_one_time_links_are_never_cached(team, api):
    response = api.as_user(team.alice).post(
        "/api/v1/workspaces/acme/invitations/", {"email": "dave@example.com"}, format="json"
    )
    assert response.status_code == 201 and "accept_url" in response.json()
    assert response["Cache-Control"] == "no-store"

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
    connection = connection_create(
        workspace=team.a, oauth_client=client, name="Books", owner=team.alice, actor=Actor(user=team.alice)
    )
    response = api.as_user(team.alice).post(f"/api/v1/workspaces/acme/connections/{connection.id}/authorize")
    assert response.status_code == 200 and "connect_url" in response.json()
    assert response["Cache-Control"] == "no-store"
