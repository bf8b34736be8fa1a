"""Creating, updating, replacing the secret of and deleting clients over the API, with their audit trail."""

import pytest

from connections.models import Connection
from oauthclients.models import OAuthClient
from tests.factories import make_api_key
from tests.fixtures.oauthclients import ACME_SECRET, ACME_WEBHOOK, NEW_SECRET
from tests.helpers import assert_error
from tests.oauthclients.helpers import audit_events, client_url, clients_url, exact_body, stored


def connect(client, name="Acme BV administration", status="active"):
    return Connection.objects.create(
        workspace=client.workspace, oauth_client=client, name=name, status=status, access_token="a", refresh_token="r"
    )


# --- Create ------------------------------------------------------------------------------------------


def test_registering_exact_online_stores_what_the_admin_typed_and_shows_the_redirect_uri(team, api, settings):
    settings.PUBLIC_BASE_URL = "https://tokens.acme.example"

    response = api.as_user(team.alice).post(clients_url(), exact_body(), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["redirect_uri"] == "https://tokens.acme.example/oauth2/callback"
    assert body["connections_count"] == 0
    assert body["has_webhook_secret"] is False
    client = OAuthClient.objects.get(id=body["id"])
    assert client.workspace == team.a
    assert client.created_by == team.alice
    assert (client.name, client.client_id) == ("Exact Online Production", "0f4e7c1a-exact")
    assert client.client_secret == "typed-in-secret-Qp7dE2"
    assert client.authorization_url == "https://start.exactonline.nl/api/oauth2/auth"
    assert client.token_url == "https://start.exactonline.nl/api/oauth2/token"
    assert client.access_token_expires_in == 3599999
    assert client.refresh_token_expires_in == 7775999999


def test_creating_a_client_is_audited_without_its_secret(team, api):
    response = api.as_user(team.alice).post(clients_url(), exact_body(webhook_secret="hook-Xy9"), format="json")

    [event] = audit_events("oauth_client.created")
    assert event.workspace == team.a
    assert event.actor == team.alice
    assert event.target_id == response.json()["id"]
    assert event.target_label == "Exact Online Production"
    assert event.data == {"provider": "exact_online", "name": "Exact Online Production", "client_id": "0f4e7c1a-exact"}
    assert "typed-in-secret" not in str(event.data) and "hook-Xy9" not in str(event.data)


def test_a_client_created_with_an_api_key_is_audited_as_that_key(team, api):
    raw = make_api_key(team.a, scopes=["write"], name="Terraform")

    api.as_key(raw).post(clients_url(), exact_body(), format="json")

    [event] = audit_events("oauth_client.created")
    assert event.actor is None
    assert event.actor_api_key.name == "Terraform"
    assert event.actor_label.startswith("API key Terraform")


def test_a_client_needs_a_secret(team, api):
    response = api.as_user(team.alice).post(clients_url(), exact_body(client_secret="  "), format="json")

    assert_error(response, 400, "Enter the Client Secret from the provider's app registration.", field="client_secret")
    assert not OAuthClient.objects.exists()


def test_all_problems_are_reported_at_once(team, api):
    body = exact_body(client_id="", client_secret="", access_token_expires_in=0, token_url="ftp://files")

    error = assert_error(api.as_user(team.alice).post(clients_url(), body, format="json"), 400)

    assert error["message"] == "Some fields are not valid."
    assert error["fields"] == {
        "client_id": ["Enter the Client ID from the provider's app registration."],
        "client_secret": ["Enter the Client Secret from the provider's app registration."],
        "access_token_expires_in": [
            "Enter the access-token lifetime in milliseconds as a whole number above 0, e.g. 3599999."
        ],
        "token_url": ["Enter a full URL starting with https://."],
    }
    assert not OAuthClient.objects.exists()


def test_a_client_needs_a_name(team, api):
    response = api.as_user(team.alice).post(clients_url(), exact_body(name=""), format="json")

    assert_error(response, 400, "This field may not be blank.", field="name")
    assert not OAuthClient.objects.exists()


# --- Update -------------------------------------------------------------------------------------------


def test_a_new_client_secret_replaces_the_old_one_and_is_audited(team, api, acme_client):
    response = api.as_user(team.alice).patch(client_url(acme_client), {"client_secret": NEW_SECRET}, format="json")

    assert response.status_code == 200, response.content
    assert "client_secret" not in response.json()
    acme_client.refresh_from_db()
    assert acme_client.client_secret == NEW_SECRET
    assert acme_client.webhook_secret == ACME_WEBHOOK
    [event] = audit_events("oauth_client.secret_replaced", acme_client)
    assert event.actor == team.alice
    assert event.data == {"secrets": ["client_secret"]}
    assert not audit_events("oauth_client.updated", acme_client)


def test_an_update_without_a_secret_keeps_the_old_one(team, api, acme_client):
    response = api.as_user(team.alice).patch(client_url(acme_client), {"name": "Exact NL (prod)"}, format="json")

    assert response.status_code == 200, response.content
    acme_client.refresh_from_db()
    assert acme_client.name == "Exact NL (prod)"
    assert acme_client.client_secret == ACME_SECRET
    assert not audit_events("oauth_client.secret_replaced")
    [event] = audit_events("oauth_client.updated", acme_client)
    assert event.data == {"fields": ["name"]}


def test_an_empty_secret_in_an_update_keeps_the_old_one(team, api, acme_client):
    api.as_user(team.alice).patch(client_url(acme_client), {"client_secret": "", "client_id": "x"}, format="json")

    acme_client.refresh_from_db()
    assert acme_client.client_secret == ACME_SECRET
    assert acme_client.client_id == "x"


def test_a_put_replaces_the_settings_and_the_secret(team, api, acme_client):
    body = {
        "name": "Exact BE",
        "client_id": "be-id",
        "site": "be",
        "access_token_expires_in": 600000,
        "refresh_token_expires_in": 0,
        "client_secret": NEW_SECRET,
    }

    response = api.as_user(team.alice).put(client_url(acme_client), body, format="json")

    assert response.status_code == 200, response.content
    acme_client.refresh_from_db()
    assert (acme_client.name, acme_client.client_id, acme_client.site) == ("Exact BE", "be-id", "be")
    assert acme_client.token_url == "https://start.exactonline.be/api/oauth2/token"
    assert acme_client.access_token_expires_in == 600000
    assert acme_client.refresh_token_expires_in == 0
    assert acme_client.client_secret == NEW_SECRET
    [updated] = audit_events("oauth_client.updated", acme_client)
    assert set(updated.data["fields"]) >= {"name", "client_id", "site", "authorization_url", "token_url"}
    assert audit_events("oauth_client.secret_replaced", acme_client)


def test_moving_an_exact_online_client_to_another_site_moves_its_urls(team, api, acme_client):
    response = api.as_user(team.alice).patch(client_url(acme_client), {"site": "de"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["authorization_url"] == "https://start.exactonline.de/api/oauth2/auth"
    assert response.json()["token_url"] == "https://start.exactonline.de/api/oauth2/token"
    assert response.json()["api_base_url"] == "https://start.exactonline.de/api/v1"


def test_a_new_webhook_secret_is_stored_and_reported_as_set(team, api, globex_client):
    response = api.as_user(team.charlie).patch(
        client_url(globex_client, "globex"), {"webhook_secret": "hook-2"}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["has_webhook_secret"] is True
    globex_client.refresh_from_db()
    assert globex_client.webhook_secret == "hook-2"
    [event] = audit_events("oauth_client.secret_replaced", globex_client)
    assert event.data == {"secrets": ["webhook_secret"]}


def test_the_type_of_a_client_cannot_be_changed(team, api, acme_client):
    response = api.as_user(team.alice).patch(client_url(acme_client), {"provider": "generic"}, format="json")

    assert response.status_code == 200
    assert OAuthClient.objects.get(id=acme_client.id).provider == "exact_online"


def test_a_refused_update_changes_nothing(team, api, acme_client):
    before = stored()

    response = api.as_user(team.alice).patch(
        client_url(acme_client),
        {"name": "Renamed", "client_secret": NEW_SECRET, "access_token_expires_in": "ten minutes"},
        format="json",
    )

    assert_error(response, 400, "Enter the access-token lifetime in milliseconds", field="access_token_expires_in")
    assert stored() == before


# --- Delete -------------------------------------------------------------------------------------------


def test_deleting_an_unused_client_is_audited(team, api, acme_client):
    response = api.as_user(team.alice).delete(client_url(acme_client))

    assert response.status_code == 204
    assert not OAuthClient.objects.filter(id=acme_client.id).exists()
    [event] = audit_events("oauth_client.deleted", acme_client)
    assert event.actor == team.alice
    assert event.data == {"name": "Exact Online NL", "provider": "exact_online", "revoked_connections": 0}


@pytest.mark.parametrize("status", ["pending", "active", "refresh_failing", "needs_reauth"])
def test_deleting_a_client_that_a_connection_uses_is_refused(team, api, acme_client, status):
    connect(acme_client, status=status)
    before = stored()

    response = api.as_user(team.alice).delete(client_url(acme_client))

    error = assert_error(
        response, 400, "1 connection(s) use this client. Confirm that they will be revoked to delete it."
    )
    assert error["code"] == "client_in_use"
    assert stored() == before
    assert Connection.objects.get().access_token == "a"


@pytest.mark.parametrize("flag", ["false", "0", "no", ""])
def test_anything_but_an_explicit_yes_keeps_the_client(team, api, acme_client, flag):
    connect(acme_client)

    response = api.as_user(team.alice).delete(f"{client_url(acme_client)}?revoke_connections={flag}")

    assert_error(response, 400, "use this client")
    assert OAuthClient.objects.filter(id=acme_client.id).exists()


def test_deleting_with_revoke_connections_revokes_them_and_deletes_the_client(team, api, acme_client):
    first, second = connect(acme_client, "Acme BV"), connect(acme_client, "Acme Holding")

    response = api.as_user(team.alice).delete(f"{client_url(acme_client)}?revoke_connections=true")

    assert response.status_code == 204, response.content
    assert not OAuthClient.objects.filter(id=acme_client.id).exists()
    assert {e.target_id for e in audit_events("connection.revoked")} == {str(first.id), str(second.id)}
    [event] = audit_events("oauth_client.deleted", acme_client)
    assert event.data["revoked_connections"] == 2


def test_revoked_connections_do_not_hold_a_client(team, api, acme_client):
    connect(acme_client, status="revoked")

    assert api.as_user(team.alice).delete(client_url(acme_client)).status_code == 204
    assert not OAuthClient.objects.exists()


def test_connection_counts_leave_out_revoked_connections(team, api, acme_client):
    connect(acme_client, "one")
    connect(acme_client, "two", status="needs_reauth")
    connect(acme_client, "gone", status="revoked")

    assert api.as_user(team.bob).get(client_url(acme_client)).json()["connections_count"] == 2
