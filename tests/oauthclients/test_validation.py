"""Bad input is refused with a message a person understands, and nothing is saved.

URLs an admin types are an SSRF surface: in production only https to public
hosts. The test settings allow http and loopback (test peers); the
``strict_urls`` fixture turns that off, and ``dns`` answers name look-ups.
"""

import pytest

from oauthclients.models import OAuthClient
from tests.helpers import assert_error
from tests.oauthclients.helpers import client_url, clients_url, exact_body, generic_body, stored

PRIVATE = "a private, loopback or link-local address; use a public host."

BAD_URLS = [
    ("http", "http://login.example.com/oauth/token", "The URL must use https://."),
    ("loopback", "https://127.0.0.1/oauth/token", f"127.0.0.1 is {PRIVATE}"),
    ("loopback-port", "https://127.0.0.1:8443/oauth/token", f"127.0.0.1 is {PRIVATE}"),
    ("private-10", "https://10.0.0.5/oauth/token", f"10.0.0.5 is {PRIVATE}"),
    ("private-172.16", "https://172.16.0.1/oauth/token", f"172.16.0.1 is {PRIVATE}"),
    ("private-172.31", "https://172.31.255.254/oauth/token", f"172.31.255.254 is {PRIVATE}"),
    ("private-192.168", "https://192.168.1.1/oauth/token", f"192.168.1.1 is {PRIVATE}"),
    ("metadata", "https://169.254.169.254/latest/meta-data/", f"169.254.169.254 is {PRIVATE}"),
    (
        "metadata-name",
        "https://metadata.google.internal/computeMetadata/v1/",
        "“metadata.google.internal” is not a public host.",
    ),
    ("ipv6-loopback", "https://[::1]/oauth/token", f"::1 is {PRIVATE}"),
    ("ipv6-link-local", "https://[fe80::1]/oauth/token", f"fe80::1 is {PRIVATE}"),
    ("ipv4-mapped-ipv6", "https://[::ffff:127.0.0.1]/oauth/token", f"::ffff:127.0.0.1 is {PRIVATE}"),
    ("unspecified", "https://0.0.0.0/oauth/token", f"0.0.0.0 is {PRIVATE}"),
    ("localhost", "https://localhost/oauth/token", "“localhost” is not a public host."),
    ("localhost-dot", "https://LOCALHOST./oauth/token", "“localhost” is not a public host."),
    ("sub.localhost", "https://api.localhost/oauth/token", "“api.localhost” is not a public host."),
    (
        "name-to-loopback",
        "https://intranet.example.com/oauth/token",
        f"“intranet.example.com” resolves to 127.0.0.1, {PRIVATE}",
    ),
    (
        "name-to-ipv6-loopback",
        "https://v6-loopback.example.com/oauth/token",
        f"“v6-loopback.example.com” resolves to ::1, {PRIVATE}",
    ),
    (
        "name-to-private",
        "https://db.corp.example.com/oauth/token",
        f"“db.corp.example.com” resolves to 10.1.2.3, {PRIVATE}",
    ),
    (
        "name-to-public-and-private",
        "https://rebind.example.com/oauth/token",
        f"“rebind.example.com” resolves to 192.168.1.10, {PRIVATE}",
    ),
    (
        "credentials",
        "https://user:pass@login.example.com/oauth/token",
        "The URL must not contain a user name or password.",
    ),
    ("not-a-url", "login.example.com/oauth/token", "Enter a full URL starting with https://."),
    ("javascript", "javascript:alert(1)", "Enter a full URL starting with https://."),
    ("file", "file:///etc/passwd", "Enter a full URL starting with https://."),
]


@pytest.mark.parametrize(("url", "message"), [b[1:] for b in BAD_URLS], ids=[b[0] for b in BAD_URLS])
@pytest.mark.parametrize("field", ["token_url", "authorization_url"])
def test_a_token_or_authorization_url_that_is_not_public_https_is_refused(team, api, strict_urls, field, url, message):
    response = api.as_user(team.alice).post(clients_url(), generic_body(**{field: url}), format="json")

    error = assert_error(response, 400)
    assert error["message"] == message
    assert error["fields"] == {field: [message]}
    assert not OAuthClient.objects.exists()


@pytest.mark.parametrize("field", ["api_base_url", "identity_url"])
def test_the_api_base_and_identity_urls_are_guarded_too(team, api, strict_urls, field):
    response = api.as_user(team.alice).post(
        clients_url(), generic_body(**{field: "https://169.254.169.254/latest/meta-data/"}), format="json"
    )

    assert_error(response, 400, f"169.254.169.254 is {PRIVATE}", field=field)
    assert not OAuthClient.objects.exists()


def test_an_exact_online_client_pointed_at_the_metadata_service_is_refused(team, api, strict_urls):
    body = exact_body(token_url="https://169.254.169.254/api/oauth2/token")

    response = api.as_user(team.alice).post(clients_url(), body, format="json")

    assert_error(response, 400, f"169.254.169.254 is {PRIVATE}", field="token_url")
    assert not OAuthClient.objects.exists()


def test_an_update_to_a_private_url_is_refused_and_changes_nothing(team, api, strict_urls, acme_client):
    before = stored()

    response = api.as_user(team.alice).patch(
        client_url(acme_client), {"token_url": "https://10.0.0.5/api/oauth2/token", "name": "Moved"}, format="json"
    )

    assert_error(response, 400, f"10.0.0.5 is {PRIVATE}", field="token_url")
    assert stored() == before


def test_public_https_urls_are_accepted_under_the_production_rules(team, api, strict_urls):
    exact = api.as_user(team.alice).post(clients_url(), exact_body(), format="json")
    generic = api.as_user(team.alice).post(clients_url(), generic_body(), format="json")

    assert exact.status_code == 201, exact.content
    assert generic.status_code == 201, generic.content


def test_with_insecure_urls_allowed_a_loopback_http_peer_is_accepted(team, api, settings):
    settings.OAUTH_ALLOW_INSECURE_URLS = True
    body = generic_body(
        authorization_url="http://127.0.0.1:8765/oauth/authorize", token_url="http://127.0.0.1:8765/oauth/token"
    )

    response = api.as_user(team.alice).post(clients_url(), body, format="json")

    assert response.status_code == 201, response.content
    assert OAuthClient.objects.get().token_url == "http://127.0.0.1:8765/oauth/token"


def test_the_same_loopback_peer_is_refused_once_insecure_urls_are_off(team, api, strict_urls):
    body = generic_body(
        authorization_url="http://127.0.0.1:8765/oauth/authorize", token_url="http://127.0.0.1:8765/oauth/token"
    )

    response = api.as_user(team.alice).post(clients_url(), body, format="json")

    assert_error(response, 400, "The URL must use https://.")
    assert not OAuthClient.objects.exists()


# --- Lifetimes -----------------------------------------------------------------------------------------

ACCESS_MESSAGE = "Enter the access-token lifetime in milliseconds as a whole number above 0, e.g. 3599999."
REFRESH_MESSAGE = "Enter the refresh-token lifetime in milliseconds as a whole number, 0 for never, e.g. 7775999999."
BAD_LIFETIMES = [
    ("access_token_expires_in", 0),
    ("access_token_expires_in", "0"),
    ("access_token_expires_in", -1),
    ("access_token_expires_in", "-3599999"),
    ("access_token_expires_in", 3599.5),
    ("access_token_expires_in", "3599999.0"),
    ("access_token_expires_in", "1e6"),
    ("access_token_expires_in", "ten minutes"),
    ("access_token_expires_in", "3 599 999"),
    ("access_token_expires_in", True),
    ("access_token_expires_in", [3599999]),
    ("refresh_token_expires_in", -1),
    ("refresh_token_expires_in", "-7775999999"),
    ("refresh_token_expires_in", 1.5),
    ("refresh_token_expires_in", "never"),
    ("refresh_token_expires_in", {"days": 90}),
]


@pytest.mark.parametrize(("field", "value"), BAD_LIFETIMES, ids=[f"{f[:7]}={v!r}" for f, v in BAD_LIFETIMES])
def test_a_lifetime_that_is_not_a_whole_number_of_milliseconds_is_refused(team, api, field, value):
    message = ACCESS_MESSAGE if field == "access_token_expires_in" else REFRESH_MESSAGE

    response = api.as_user(team.alice).post(clients_url(), exact_body(**{field: value}), format="json")

    error = assert_error(response, 400)
    assert error["message"] == message
    assert error["fields"] == {field: [message]}
    assert not OAuthClient.objects.exists()


@pytest.mark.parametrize("field", ["access_token_expires_in", "refresh_token_expires_in"])
def test_a_lifetime_too_large_to_store_is_refused(team, api, field):
    response = api.as_user(team.alice).post(clients_url(), exact_body(**{field: 10**19}), format="json")

    assert_error(response, 400, "This lifetime is too large", field=field)
    assert not OAuthClient.objects.exists()


@pytest.mark.parametrize(("access", "refresh"), [(1, 0), ("3599999", "7775999999"), (" 600000 ", "0")])
def test_whole_numbers_of_milliseconds_are_accepted_and_zero_refresh_means_never(team, api, access, refresh):
    body = exact_body(access_token_expires_in=access, refresh_token_expires_in=refresh)

    response = api.as_user(team.alice).post(clients_url(), body, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["access_token_expires_in"] == int(access)
    assert response.json()["refresh_token_expires_in"] == int(refresh)


def test_lifetimes_left_out_come_from_the_provider(team, api):
    body = exact_body()
    del body["access_token_expires_in"], body["refresh_token_expires_in"]

    response = api.as_user(team.alice).post(clients_url(), body, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["access_token_expires_in"] == 599999
    assert response.json()["refresh_token_expires_in"] == 30 * 24 * 3600 * 1000


# --- Names -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Exact Online NL", "exact online nl", "  Exact Online NL  "])
def test_a_second_client_with_the_same_name_in_a_workspace_is_refused(team, api, acme_client, name):
    before = stored()

    response = api.as_user(team.alice).post(clients_url(), exact_body(name=name), format="json")

    error = assert_error(response, 400, field="name")
    assert error["message"] == f"A client named “{name.strip()}” already exists in this workspace."
    assert stored() == before


def test_renaming_a_client_to_a_taken_name_is_refused(team, api, acme_client):
    other = api.as_user(team.alice).post(clients_url(), exact_body(name="Exact Online BE"), format="json").json()
    before = stored()

    response = api.as_user(team.alice).patch(
        f"{clients_url()}{other['id']}/", {"name": "Exact Online NL"}, format="json"
    )

    assert_error(response, 400, "A client named “Exact Online NL” already exists in this workspace.", field="name")
    assert stored() == before


def test_another_workspace_may_use_the_same_name(team, api, acme_client):
    response = api.as_user(team.charlie).post(clients_url("globex"), exact_body(name="Exact Online NL"), format="json")

    assert response.status_code == 201, response.content


def test_a_client_keeps_its_own_name_when_saved_again(team, api, acme_client):
    response = api.as_user(team.alice).patch(client_url(acme_client), {"name": "Exact Online NL"}, format="json")

    assert response.status_code == 200, response.content


def test_a_name_longer_than_100_characters_is_refused(team, api):
    response = api.as_user(team.alice).post(clients_url(), exact_body(name="x" * 101), format="json")

    assert_error(response, 400, "100 characters", field="name")
    assert not OAuthClient.objects.exists()


# --- The same rules in the browser form --------------------------------------------------------------------

FORM = {
    "provider": "generic",
    "site": "nl",
    "name": "Acme CRM",
    "client_id": "crm-client",
    "client_secret": "s3cret-Form",
    "authorization_url": "https://login.example.com/oauth/authorize",
    "token_url": "https://login.example.com/oauth/token",
    "access_token_expires_in": "3599999",
    "refresh_token_expires_in": "0",
    "token_endpoint_auth_method": "client_secret_basic",
    "use_pkce": "on",
}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("token_url", "https://169.254.169.254/latest/meta-data/", f"169.254.169.254 is {PRIVATE}"),
        ("authorization_url", "https://[::1]/authorize", f"::1 is {PRIVATE}"),
        ("token_url", "https://intranet.example.com/token", f"“intranet.example.com” resolves to 127.0.0.1, {PRIVATE}"),
        ("token_url", "http://login.example.com/token", "The URL must use https://."),
        ("access_token_expires_in", "0", ACCESS_MESSAGE),
        ("access_token_expires_in", "ten minutes", ACCESS_MESSAGE),
        ("refresh_token_expires_in", "-1", REFRESH_MESSAGE),
        ("refresh_token_expires_in", "1.5", REFRESH_MESSAGE),
    ],
    ids=[
        "metadata",
        "ipv6-loopback",
        "name-to-loopback",
        "http",
        "zero-access",
        "text-access",
        "negative-refresh",
        "fraction-refresh",
    ],
)
def test_the_register_form_shows_the_problem_next_to_the_field_and_saves_nothing(
    team, client, strict_urls, field, value, message
):
    client.force_login(team.alice)

    response = client.post("/w/acme/admin/oauth-clients/new/", {**FORM, field: value})

    assert response.status_code == 200
    assert response.context["form"].errors == {field: [message]}
    assert message.replace("“", "&ldquo;") in response.content.decode() or message in response.content.decode()
    assert "s3cret-Form" not in response.content.decode()
    assert not OAuthClient.objects.exists()


def test_the_register_form_refuses_a_duplicate_name(team, client, acme_client):
    client.force_login(team.alice)

    response = client.post("/w/acme/admin/oauth-clients/new/", {**FORM, "name": "Exact Online NL"})

    assert response.context["form"].errors == {
        "name": ["A client named “Exact Online NL” already exists in this workspace."]
    }
    assert OAuthClient.objects.count() == 1
