"""Provider presets: what `/api/v1/providers/` offers and how a new client is filled in from it."""

import pytest

from oauthclients.models import OAuthClient
from tests.helpers import assert_error
from tests.oauthclients.helpers import clients_url, exact_body, generic_body

EXACT_SITES = {"nl", "be", "de", "co.uk", "com", "es", "fr"}


def providers(api, user) -> dict:
    response = api.as_user(user).get("/api/v1/providers/")
    assert response.status_code == 200, response.content
    return {p["key"]: p for p in response.json()}


def test_the_provider_list_offers_exact_online_with_its_seven_sites_generic_and_presets(team, api):
    offered = providers(api, team.bob)

    exact = offered["exact_online"]
    assert exact["name"] == "Exact Online"
    assert set(exact["sites"]) == EXACT_SITES
    for site, urls in exact["sites"].items():
        assert urls["authorization_url"] == f"https://start.exactonline.{site}/api/oauth2/auth"
        assert urls["token_url"] == f"https://start.exactonline.{site}/api/oauth2/token"
    assert exact["token_endpoint_auth_method"] == "client_secret_post"
    assert exact["use_pkce"] is False
    assert exact["rotates_refresh_token"] is True
    assert exact["refresh_window_seconds"] == 30

    assert offered["generic"]["name"] == "Generic OAuth 2.0"
    assert offered["generic"]["authorization_url"] == offered["generic"]["token_url"] == ""

    presets = {key: p for key, p in offered.items() if key not in ("exact_online", "generic")}
    assert len(presets) >= 3
    for preset in presets.values():
        assert preset["authorization_url"].startswith("https://")
        assert preset["token_url"].startswith("https://")


@pytest.mark.parametrize("site", sorted(EXACT_SITES))
def test_an_exact_online_client_gets_the_urls_of_its_country_site(team, api, site):
    response = api.as_user(team.alice).post(clients_url(), exact_body(site=site), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["site"] == site
    assert body["authorization_url"] == f"https://start.exactonline.{site}/api/oauth2/auth"
    assert body["token_url"] == f"https://start.exactonline.{site}/api/oauth2/token"
    assert body["api_base_url"] == f"https://start.exactonline.{site}/api/v1"
    assert body["identity_url"] == f"https://start.exactonline.{site}/api/v1/current/Me"


def test_an_exact_online_client_without_a_site_is_on_the_dutch_site(team, api):
    response = api.as_user(team.alice).post(clients_url(), exact_body(), format="json")

    assert response.status_code == 201, response.content
    assert response.json()["site"] == "nl"
    assert response.json()["token_url"] == "https://start.exactonline.nl/api/oauth2/token"


def test_exact_online_always_sends_credentials_in_the_form_body_without_pkce(team, api):
    body = exact_body(site="be", token_endpoint_auth_method="client_secret_basic", use_pkce=True)

    response = api.as_user(team.alice).post(clients_url(), body, format="json")

    assert response.status_code == 201, response.content
    client = OAuthClient.objects.get(id=response.json()["id"])
    assert client.token_endpoint_auth_method == "client_secret_post"
    assert client.use_pkce is False
    assert client.authorization_url == "https://start.exactonline.be/api/oauth2/auth"
    assert client.token_url == "https://start.exactonline.be/api/oauth2/token"


def test_explicit_exact_online_urls_are_kept_and_the_api_base_follows_the_token_url(team, api):
    emulator = "http://127.0.0.1:8765"  # allowed by the test settings (OAUTH_ALLOW_INSECURE_URLS)
    body = exact_body(
        site="be", authorization_url=f"{emulator}/api/oauth2/auth", token_url=f"{emulator}/api/oauth2/token"
    )

    response = api.as_user(team.alice).post(clients_url(), body, format="json")

    assert response.status_code == 201, response.content
    client = OAuthClient.objects.get(id=response.json()["id"])
    assert client.authorization_url == f"{emulator}/api/oauth2/auth"
    assert client.token_url == f"{emulator}/api/oauth2/token"
    assert client.api_base == f"{emulator}/api/v1"
    assert client.provider_spec.resolved_identity_url(client) == f"{emulator}/api/v1/current/Me"
    assert response.json()["api_base_url"] == f"{emulator}/api/v1"
    assert response.json()["identity_url"] == f"{emulator}/api/v1/current/Me"


def test_an_unknown_exact_online_site_is_refused_with_the_list_of_sites(team, api):
    response = api.as_user(team.alice).post(clients_url(), exact_body(site="xx"), format="json")

    error = assert_error(response, 400, "Choose an Exact Online site", field="site")
    assert "co.uk" in error["message"]
    assert not OAuthClient.objects.exists()


def test_a_generic_client_defaults_to_http_basic_and_pkce(team, api):
    response = api.as_user(team.alice).post(clients_url(), generic_body(), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["provider"] == "generic"
    assert body["site"] == ""
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert body["use_pkce"] is True


def test_a_generic_client_keeps_the_authentication_method_and_pkce_it_is_given(team, api):
    body = generic_body(token_endpoint_auth_method="client_secret_post", use_pkce=False, scopes="read, write")

    response = api.as_user(team.alice).post(clients_url(), body, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["token_endpoint_auth_method"] == "client_secret_post"
    assert response.json()["use_pkce"] is False
    assert response.json()["scopes"] == "read write"


def test_a_generic_client_needs_its_urls(team, api):
    body = generic_body(authorization_url="", token_url="")

    response = api.as_user(team.alice).post(clients_url(), body, format="json")

    error = assert_error(response, 400, "Enter a full URL starting with https://.")
    assert set(error["fields"]) == {"authorization_url", "token_url"}
    assert not OAuthClient.objects.exists()


def test_a_preset_fills_in_its_urls_scopes_and_lifetimes(team, api):
    offered = providers(api, team.alice)
    preset = next(p for key, p in offered.items() if key not in ("exact_online", "generic"))
    body = {"provider": preset["key"], "name": preset["name"], "client_id": "id", "client_secret": "s"}

    response = api.as_user(team.alice).post(clients_url(), body, format="json")

    assert response.status_code == 201, response.content
    created = response.json()
    for field in (
        "authorization_url",
        "token_url",
        "scopes",
        "token_endpoint_auth_method",
        "use_pkce",
        "access_token_expires_in",
        "refresh_token_expires_in",
    ):
        assert created[field] == preset[field], field


def test_an_unknown_type_is_refused(team, api):
    response = api.as_user(team.alice).post(clients_url(), exact_body(provider="myspace"), format="json")

    assert_error(response, 400, field="provider")
    assert not OAuthClient.objects.exists()
