"""The Admin console's OAuth2.0 Clients pages, through Django's test client."""

import pytest

from connections.models import Connection
from oauthclients.models import OAuthClient
from tests.fixtures.oauthclients import ACME_SECRET, ACME_WEBHOOK, NEW_SECRET
from tests.oauthclients.helpers import audit_events, stored

PAGES = ["", "new/", "{id}/", "{id}/edit/", "{id}/secret/", "{id}/delete/"]


def page(path: str, client_obj, workspace: str = "acme") -> str:
    return f"/w/{workspace}/admin/oauth-clients/{path.format(id=client_obj.id)}"


def text(response) -> str:
    return response.content.decode()


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_visitors_are_sent_to_log_in(client, acme_client, path):
    response = client.get(page(path, acme_client))

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("path", PAGES)
def test_members_may_not_open_the_client_pages(client, team, acme_client, path):
    client.force_login(team.bob)

    assert client.get(page(path, acme_client)).status_code == 403


@pytest.mark.parametrize("path", PAGES)
def test_non_members_get_not_found(client, team, acme_client, path):
    client.force_login(team.charlie)

    assert client.get(page(path, acme_client)).status_code == 404


@pytest.mark.parametrize("path", PAGES[2:])
def test_a_client_of_another_workspace_is_not_found(client, team, globex_client, path):
    client.force_login(team.alice)

    assert client.get(page(path, globex_client)).status_code == 404


@pytest.mark.parametrize("path", PAGES[1:])
def test_members_and_outsiders_cannot_post_to_the_client_pages(client, team, acme_client, path):
    before = stored()
    data = {"name": "Taken over", "client_secret": NEW_SECRET, "revoke_connections": "on"}

    client.force_login(team.bob)
    assert client.post(page(path, acme_client), data).status_code == 403
    client.force_login(team.charlie)
    assert client.post(page(path, acme_client), data).status_code == 404

    assert stored() == before


def test_registering_through_the_form_shows_the_client_with_its_redirect_uri(client, team, settings):
    settings.PUBLIC_BASE_URL = "https://tokens.acme.example"
    client.force_login(team.alice)
    form = client.get(page("new/", team.a))
    assert 'value="https://tokens.acme.example/oauth2/callback"' in text(form)
    assert form.context["form"]["authorization_url"].value() == "https://start.exactonline.nl/api/oauth2/auth"

    response = client.post(
        page("new/", team.a),
        {
            "provider": "exact_online",
            "site": "nl",
            "name": "Exact Online NL",
            "client_id": "exact-id",
            "client_secret": ACME_SECRET,
            "authorization_url": "https://start.exactonline.nl/api/oauth2/auth",
            "token_url": "https://start.exactonline.nl/api/oauth2/token",
            "access_token_expires_in": "3599999",
            "refresh_token_expires_in": "7775999999",
            "token_endpoint_auth_method": "client_secret_post",
        },
        follow=True,
    )

    created = OAuthClient.objects.get()
    assert response.redirect_chain[-1][0] == page("{id}/", created)
    assert "OAuth client “Exact Online NL” registered." in text(response)
    assert 'value="https://tokens.acme.example/oauth2/callback"' in text(response)
    assert "3599999 ms" in text(response) and "7775999999 ms" in text(response)
    assert created.client_secret == ACME_SECRET
    assert created.created_by == team.alice
    assert audit_events("oauth_client.created", created)


def test_the_register_form_starts_from_the_type_in_the_address(client, team):
    client.force_login(team.alice)

    form = client.get(page("new/", team.a) + "?type=xero").context["form"]

    assert form["provider"].value() == "xero"
    assert form["token_url"].value() == "https://identity.xero.com/connect/token"


def test_the_list_shows_each_client_with_its_type_and_connection_count(client, team, acme_client):
    Connection.objects.create(
        workspace=team.a, oauth_client=acme_client, name="Acme BV", status="active", access_token="a", refresh_token="r"
    )
    client.force_login(team.alice)

    response = client.get(page("", acme_client))

    row = next(r for r in text(response).split("<tr>") if "Exact Online NL" in r)
    assert '<td data-label="Type">Exact Online</td>' in row
    assert '<td data-label="Connections">1</td>' in row
    assert "<code>acme-exact-id</code>" in row


def test_editing_keeps_the_secret_and_is_audited(client, team, acme_client):
    client.force_login(team.alice)
    initial = client.get(page("{id}/edit/", acme_client)).context["form"].initial

    response = client.post(page("{id}/edit/", acme_client), {**initial, "name": "Exact NL (prod)"}, follow=True)

    assert "Changes saved." in text(response)
    acme_client.refresh_from_db()
    assert acme_client.name == "Exact NL (prod)"
    assert acme_client.client_secret == ACME_SECRET
    [event] = audit_events("oauth_client.updated", acme_client)
    assert event.data == {"fields": ["name"]}


def test_the_edit_form_has_no_secret_or_type_fields(client, team, acme_client):
    client.force_login(team.alice)

    form = client.get(page("{id}/edit/", acme_client)).context["form"]

    assert {"provider", "client_secret", "webhook_secret"}.isdisjoint(form.fields)


def test_replacing_the_secret_overwrites_it_and_is_audited(client, team, acme_client):
    client.force_login(team.alice)

    response = client.post(page("{id}/secret/", acme_client), {"client_secret": NEW_SECRET}, follow=True)

    assert "Secret replaced. The old one is no longer stored." in text(response)
    acme_client.refresh_from_db()
    assert acme_client.client_secret == NEW_SECRET
    assert acme_client.webhook_secret == ACME_WEBHOOK
    assert audit_events("oauth_client.secret_replaced", acme_client)[0].data == {"secrets": ["client_secret"]}


def test_replacing_with_nothing_is_refused(client, team, acme_client):
    client.force_login(team.alice)

    response = client.post(page("{id}/secret/", acme_client), {"client_secret": "", "webhook_secret": ""})

    assert "Enter a new Client Secret, a new Webhook Secret, or both." in text(response)
    assert OAuthClient.objects.get().client_secret == ACME_SECRET
    assert not audit_events("oauth_client.secret_replaced")


def test_deleting_an_unused_client_needs_no_confirmation(client, team, acme_client):
    client.force_login(team.alice)
    assert "No connections use this client." in text(client.get(page("{id}/delete/", acme_client)))

    response = client.post(page("{id}/delete/", acme_client), {}, follow=True)

    assert "OAuth client “Exact Online NL” deleted." in text(response)
    assert not OAuthClient.objects.exists()
    assert audit_events("oauth_client.deleted", acme_client)


def test_deleting_a_client_in_use_needs_the_confirmation_checkbox(client, team, acme_client):
    Connection.objects.create(
        workspace=team.a, oauth_client=acme_client, name="Acme BV", status="active", access_token="a", refresh_token="r"
    )
    client.force_login(team.alice)
    confirm_page = client.get(page("{id}/delete/", acme_client))
    assert "1 connection(s)" in text(confirm_page)
    assert "I understand that every connection using this client will be revoked." in text(confirm_page)
    before = stored()

    refused = client.post(page("{id}/delete/", acme_client), {})

    assert refused.status_code == 200
    assert "Tick the box to confirm that these connections will be revoked." in text(refused)
    assert stored() == before

    confirmed = client.post(page("{id}/delete/", acme_client), {"revoke_connections": "on"}, follow=True)

    assert "OAuth client “Exact Online NL” deleted. 1 connection(s) were revoked." in text(confirmed)
    assert not OAuthClient.objects.exists()
    assert audit_events("connection.revoked")
    assert audit_events("oauth_client.deleted", acme_client)[0].data["revoked_connections"] == 1


EXACT_FORM = {
    "provider": "exact_online",
    "site": "nl",
    "name": "Exact Online NL",
    "client_id": "exact-id",
    "authorization_url": "https://start.exactonline.nl/api/oauth2/auth",
    "token_url": "https://start.exactonline.nl/api/oauth2/token",
    "access_token_expires_in": "599999",
    "refresh_token_expires_in": "2592000000",
    "token_endpoint_auth_method": "client_secret_post",
}


def test_a_secret_typed_before_a_validation_error_is_kept_but_never_shown(client, team, dns):
    client.force_login(team.alice)
    refused = client.post(page("new/", team.a), {**EXACT_FORM, "name": "", "client_secret": ACME_SECRET})
    assert refused.status_code == 200 and ACME_SECRET not in text(refused)
    assert "Kept from your previous attempt" in text(refused)
    assert ACME_SECRET not in str(client.session["oauthclient_form_secrets"])  # encrypted

    client.post(page("new/", team.a), {**EXACT_FORM, "client_secret": ""})

    assert OAuthClient.objects.get().client_secret == ACME_SECRET
    assert "oauthclient_form_secrets" not in client.session


def test_a_fresh_form_forgets_a_kept_secret(client, team, dns):
    client.force_login(team.alice)
    client.post(page("new/", team.a), {**EXACT_FORM, "name": "", "client_secret": ACME_SECRET})
    form = client.get(page("new/", team.a))
    assert "Kept from your previous attempt" not in text(form)
    refused = client.post(page("new/", team.a), {**EXACT_FORM, "client_secret": ""})
    assert "This field is required." in text(refused) and not OAuthClient.objects.exists()


def test_an_http_url_refusal_hints_at_the_development_setting(client, team, settings, dns):
    settings.OAUTH_ALLOW_INSECURE_URLS = False
    client.force_login(team.alice)
    refused = client.post(
        page("new/", team.a), {**EXACT_FORM, "client_secret": ACME_SECRET, "token_url": "http://localhost:9000/token"}
    )
    assert 'id="insecure-hint"' in text(refused) and "OAUTH_ALLOW_INSECURE_URLS=true" in text(refused)
    settings.PRODUCTION = True
    refused = client.post(
        page("new/", team.a), {**EXACT_FORM, "client_secret": ACME_SECRET, "token_url": "http://localhost:9000/token"}
    )
    assert 'id="insecure-hint"' not in text(refused)


def test_the_lifetimes_say_where_the_prefilled_values_come_from(client, team):
    client.force_login(team.alice)
    exact = text(client.get(page("new/", team.a)))
    assert "Access Token Expires In (ms)" in exact
    assert "Prefilled with Exact Online's lifetime: 599999 ms (about 10 minutes)" in exact
    generic = text(client.get(page("new/", team.a) + "?type=generic"))
    assert "Prefilled with a common default: 3600000 ms (1 hour)" in generic
