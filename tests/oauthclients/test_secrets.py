"""Secrets are write-only: encrypted at rest, and absent from every response, page, admin screen and log line."""

import logging

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from connections.models import Connection
from oauthclients.models import OAuthClient
from tests.factories import UserFactory, make_api_key
from tests.fixtures.oauthclients import ACME_SECRET, ACME_WEBHOOK, GLOBEX_SECRET, NEW_SECRET
from tests.oauthclients.helpers import client_url, clients_url, exact_body

SECRETS = (ACME_SECRET, ACME_WEBHOOK, GLOBEX_SECRET, NEW_SECRET, "typed-in-secret-Qp7dE2")


def assert_no_secret(text: str, where: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"{where} shows {leaked}"


def raw_rows() -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM oauthclients_oauthclient")
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@pytest.fixture
def superuser(db):
    return UserFactory(email="support@tokenkeeper.example", is_staff=True, is_superuser=True)


# --- At rest -------------------------------------------------------------------------------------------


def test_raw_sql_shows_no_client_or_webhook_secret(team, acme_client, globex_client):
    rows = raw_rows()

    assert len(rows) == 2
    for row in rows:
        for column, value in row.items():
            assert_no_secret(str(value), f"column {column}")
    acme = next(r for r in rows if r["name"] == "Exact Online NL")
    keys = settings.FIELD_ENCRYPTION_KEYS
    # What is stored is the secret, encrypted with the first key.
    assert Fernet(keys[0].encode()).decrypt(acme["client_secret"].encode()).decode() == ACME_SECRET
    assert Fernet(keys[0].encode()).decrypt(acme["webhook_secret"].encode()).decode() == ACME_WEBHOOK


def test_a_replaced_secret_is_stored_encrypted_too(team, api, acme_client):
    api.as_user(team.alice).patch(client_url(acme_client), {"client_secret": NEW_SECRET}, format="json")

    for row in raw_rows():
        for column, value in row.items():
            assert_no_secret(str(value), f"column {column}")
    assert OAuthClient.objects.get().client_secret == NEW_SECRET


def test_the_same_secret_encrypts_differently_each_time(team, api):
    for name in ("One", "Two"):
        api.as_user(team.alice).post(clients_url(), exact_body(name=name), format="json")

    first, second = (r["client_secret"] for r in raw_rows())
    assert first != second


def test_a_secret_held_in_memory_does_not_show_in_its_repr(acme_client):
    client = OAuthClient.objects.get(id=acme_client.id)

    assert ACME_SECRET not in repr(client.client_secret)
    assert ACME_SECRET not in repr(vars(client))


# --- API responses -----------------------------------------------------------------------------------------


def test_no_api_response_contains_a_secret(team, api, acme_client, globex_client):
    alice = api.as_user(team.alice)
    responses = {
        "create": alice.post(clients_url(), exact_body(name="Second", webhook_secret=ACME_WEBHOOK), format="json"),
        "list": alice.get(clients_url()),
        "retrieve": alice.get(client_url(acme_client)),
        "patch with secret": alice.patch(client_url(acme_client), {"client_secret": NEW_SECRET}, format="json"),
        "put with secret": alice.put(
            client_url(acme_client), {"name": "Exact NL", "client_id": "x", "client_secret": NEW_SECRET}, format="json"
        ),
        "refused create": alice.post(clients_url(), exact_body(token_url="nope"), format="json"),
        "refused patch": alice.patch(
            client_url(acme_client), {"client_secret": NEW_SECRET, "access_token_expires_in": -1}, format="json"
        ),
        "options": alice.options(clients_url()),
        "member list": api.as_user(team.bob).get(clients_url()),
        "key list": api.as_key(make_api_key(team.a, scopes=["read"])).get(clients_url()),
        "other workspace": api.as_user(team.charlie).get("/api/v1/workspaces/globex/oauth-clients/"),
        "providers": alice.get("/api/v1/providers/"),
        "schema": alice.get("/api/schema/"),
    }

    for name, response in responses.items():
        assert response.status_code < 500, (name, response.content)
        assert_no_secret(response.content.decode(), f"the {name} response")
    assert responses["create"].status_code == 201
    assert {"client_secret", "webhook_secret"}.isdisjoint(responses["retrieve"].json())
    assert responses["retrieve"].json()["has_webhook_secret"] is True


# --- Browser pages -------------------------------------------------------------------------------------------


def test_no_console_page_contains_a_secret(team, client, acme_client):
    Connection.objects.create(
        workspace=team.a, oauth_client=acme_client, name="Acme BV", status="active", access_token="a", refresh_token="r"
    )
    client.force_login(team.alice)
    base = f"/w/acme/admin/oauth-clients/{acme_client.id}"
    pages = {
        "list": client.get("/w/acme/admin/oauth-clients/"),
        "detail": client.get(f"{base}/"),
        "edit": client.get(f"{base}/edit/"),
        "replace secret": client.get(f"{base}/secret/"),
        "delete": client.get(f"{base}/delete/"),
        "refused delete": client.post(f"{base}/delete/", {}),
        "register": client.get("/w/acme/admin/oauth-clients/new/"),
        "refused register": client.post(
            "/w/acme/admin/oauth-clients/new/",
            {
                "provider": "exact_online",
                "site": "nl",
                "name": "Again",
                "client_id": "x",
                "client_secret": NEW_SECRET,
                "webhook_secret": ACME_WEBHOOK,
                "authorization_url": "https://start.exactonline.nl/api/oauth2/auth",
                "token_url": "https://start.exactonline.nl/api/oauth2/token",
                "access_token_expires_in": "soon",
                "refresh_token_expires_in": "0",
                "token_endpoint_auth_method": "client_secret_post",
            },
        ),
        "refused replace": client.post(f"{base}/secret/", {}),
        "audit log": client.get("/w/acme/admin/audit/"),
        "overview": client.get("/w/acme/"),
    }
    client.post(f"{base}/secret/", {"client_secret": NEW_SECRET})
    pages["detail after replacing"] = client.get(f"{base}/")
    pages["audit log after replacing"] = client.get("/w/acme/admin/audit/")

    for name, response in pages.items():
        assert response.status_code == 200, (name, response.status_code)
        assert_no_secret(response.content.decode(), f"the {name} page")
    detail = pages["detail"].content.decode()
    assert '<span class="badge good">set</span> (never shown again)' in detail
    assert OAuthClient.objects.get(id=acme_client.id).client_secret == NEW_SECRET


# --- Django admin --------------------------------------------------------------------------------------------------


def test_the_django_admin_list_and_change_pages_never_show_a_secret(client, superuser, acme_client, globex_client):
    client.force_login(superuser)

    listing = client.get("/django-admin/oauthclients/oauthclient/")
    change = client.get(f"/django-admin/oauthclients/oauthclient/{acme_client.id}/change/")
    search = client.get("/django-admin/oauthclients/oauthclient/", {"q": ACME_SECRET})
    audit = client.get("/django-admin/audit/auditevent/")

    for name, response in {"list": listing, "change": change, "audit": audit}.items():
        assert response.status_code == 200, name
        assert_no_secret(response.content.decode(), f"the admin {name} page")
    assert "Exact Online NL" in listing.content.decode() and "Globex CRM" in listing.content.decode()
    assert "Client Secret: set; Webhook Secret: set (never shown)" in change.content.decode()
    assert "acme-exact-id" in change.content.decode()
    # Searching by the secret is no oracle: it finds nothing.
    assert search.status_code == 200
    assert search.context["cl"].result_count == 0


def test_the_django_admin_filters_clients_by_workspace_and_type(client, superuser, team, acme_client, globex_client):
    client.force_login(superuser)
    url = "/django-admin/oauthclients/oauthclient/"

    page = client.get(url)
    by_workspace = client.get(url, {"workspace": "globex"})
    by_type = client.get(url, {"provider__exact": "exact_online"})
    by_search = client.get(url, {"q": "globex"})

    filters = {f.title for f in page.context["cl"].filter_specs}
    assert filters == {"Type", "workspace (slug)"}
    assert [c.name for c in by_workspace.context["cl"].result_list] == ["Globex CRM"]
    assert [c.name for c in by_type.context["cl"].result_list] == ["Exact Online NL"]
    assert [c.name for c in by_search.context["cl"].result_list] == ["Globex CRM"]


def test_nobody_adds_a_client_or_enters_a_secret_in_the_django_admin(client, superuser, acme_client):
    client.force_login(superuser)
    change_url = f"/django-admin/oauthclients/oauthclient/{acme_client.id}/change/"
    form = client.get(change_url).context["adminform"].form

    assert client.get("/django-admin/oauthclients/oauthclient/add/").status_code == 403
    assert "client_secret" not in form.fields and "webhook_secret" not in form.fields
    client.post(change_url, {"name": "Hacked", "client_secret": "x", "webhook_secret": "y"})
    stored = OAuthClient.objects.get()
    assert (stored.client_secret, stored.webhook_secret) == (ACME_SECRET, ACME_WEBHOOK)


def test_people_who_are_not_staff_cannot_open_the_django_admin(client, team, acme_client):
    client.force_login(team.alice)

    response = client.get("/django-admin/oauthclients/oauthclient/")

    assert response.status_code == 302
    assert "/django-admin/login/" in response["Location"]


# --- Logs ------------------------------------------------------------------------------------------------------------


def test_no_log_line_contains_a_secret(team, api, client, caplog, acme_client):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    alice = api.as_user(team.alice)

    with CaptureQueriesContext(connection) as queries:  # logs every SQL statement with its parameters
        alice.post(clients_url(), exact_body(name="Second", webhook_secret=ACME_WEBHOOK), format="json")
        alice.post(clients_url(), exact_body(name="Second", client_secret=NEW_SECRET), format="json")  # refused
        alice.patch(client_url(acme_client), {"client_secret": NEW_SECRET}, format="json")
        alice.put(
            client_url(acme_client), {"name": "NL", "client_id": "x", "client_secret": GLOBEX_SECRET}, format="json"
        )
        alice.patch(client_url(acme_client), {"client_secret": NEW_SECRET, "token_url": "bad"}, format="json")
        alice.get(clients_url())
        alice.get(client_url(acme_client))
        api.as_user(team.bob).patch(client_url(acme_client), {"client_secret": NEW_SECRET}, format="json")
        client.force_login(team.alice)
        client.post(f"/w/acme/admin/oauth-clients/{acme_client.id}/secret/", {"client_secret": ACME_SECRET})
        client.post(
            "/w/acme/admin/oauth-clients/new/", {"provider": "generic", "name": "x", "client_secret": NEW_SECRET}
        )

    assert any("oauthclients_oauthclient" in r.getMessage() for r in caplog.records), "SQL was not logged"
    assert any(r.levelno >= logging.WARNING for r in caplog.records), "the refused requests were not logged"
    for record in caplog.records:
        assert_no_secret(record.getMessage(), f"the log line {record.name}: {record.getMessage()[:80]}")
        assert_no_secret(repr(record.args), f"the log arguments of {record.name}")
    assert_no_secret(caplog.text, "the captured log")
    assert len(queries) > 0
