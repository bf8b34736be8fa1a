"""Acceptance: a workspace admin registers OAuth 2.0 clients in the Admin console.

Admin console → OAuth2.0 Clients → Register OAuth2.0 Client, with the labels
of the issue; the client page shows the redirect URI to copy into the
provider and never the secret. Screenshots: oauth-*.png (see ``shot``).
"""

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from connections.models import Connection
from oauthclients.models import OAuthClient
from tests.e2e.helpers import login, open_console_page, screenshot, url
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SECRET = "browser-typed-secret-Wq3zK8"
EXACT_NL = ("https://start.exactonline.nl/api/oauth2/auth", "https://start.exactonline.nl/api/oauth2/token")
EXACT_BE = ("https://start.exactonline.be/api/oauth2/auth", "https://start.exactonline.be/api/oauth2/token")


def shot(page: Page, name: str) -> Path:
    """A full-page screenshot as oauth-<name>.png (``helpers.screenshot``)."""
    return screenshot(page, f"oauth-{name}")


def open_oauth_clients(page: Page, live_server) -> None:
    """From the workspace overview: Admin console → OAuth2.0 Clients."""
    page.goto(url(live_server, "/w/acme/"))
    expect(page.get_by_role("heading", level=1, name="Acme")).to_be_visible()
    open_console_page(page, "OAuth2.0 Clients")


def open_register_form(page: Page) -> None:
    page.get_by_role("main").get_by_role("link", name="Register OAuth2.0 Client").click()
    expect(page.get_by_role("heading", level=1, name="Register OAuth2.0 Client")).to_be_visible()


def field(page: Page, label: str):
    return page.get_by_label(label, exact=True)


def expect_urls(page: Page, urls: tuple[str, str]) -> None:
    expect(field(page, "Authorization URL")).to_have_value(urls[0])
    expect(field(page, "Token URL")).to_have_value(urls[1])


def client_row(page: Page, name: str):
    return page.locator("#oauth-clients tbody tr").filter(has=page.get_by_role("link", name=name, exact=True))


def expect_secret_hidden(page: Page) -> None:
    assert SECRET not in page.content()


@pytest.fixture
def alice(team, new_person, live_server):
    """Alice, admin of Acme, logged in through the login form."""
    page = new_person()
    login(page, live_server, team.alice.email, PASSWORD)
    return page


def test_an_admin_registers_an_exact_online_client_and_finds_it_listed(alice, live_server, settings):
    settings.PUBLIC_BASE_URL = live_server.url
    page = alice
    open_oauth_clients(page, live_server)
    expect(page.get_by_text("No OAuth clients yet.")).to_be_visible()
    open_register_form(page)

    field(page, "Type").select_option(label="Exact Online")
    field(page, "Name").fill("Exact Online NL")
    field(page, "Client ID").fill("3f2a9c1e-exact-nl")
    field(page, "Client Secret").fill(SECRET)
    expect(page.locator("#redirect-uri-value")).to_have_value(f"{live_server.url}/oauth2/callback")
    expect_urls(page, EXACT_NL)
    # The country site fills in its own URLs.
    field(page, "Country site").select_option(label="Belgium (exactonline.be)")
    expect_urls(page, EXACT_BE)
    field(page, "Country site").select_option(label="Netherlands (exactonline.nl)")
    expect_urls(page, EXACT_NL)
    # Exact Online has nothing to choose in Advanced: client_secret_post, no PKCE.
    expect(page.locator("#advanced")).to_be_hidden()
    # Prefilled with Exact Online's own lifetimes, and the help says so.
    expect(field(page, "Access Token Expires In (ms)")).to_have_value("599999")
    expect(page.locator("[data-field=access_token_expires_in] .help")).to_contain_text(
        "Prefilled with Exact Online's lifetime: 599999 ms (about 10 minutes)"
    )
    field(page, "Access Token Expires In (ms)").fill("3599999")
    expect(page.locator("output[data-duration-of=id_access_token_expires_in]")).to_have_text("= about 1 hour")
    field(page, "Refresh Token Expires In (ms)").fill("7775999999")
    shot(page, "register-form")

    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("heading", level=1, name="Exact Online NL")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("OAuth client “Exact Online NL” registered.")
    expect(page.get_by_label("Redirect URI")).to_have_value(f"{live_server.url}/oauth2/callback")
    facts = page.locator("dl.facts")
    expect(facts).to_contain_text("Exact Online (nl)")
    expect(facts).to_contain_text("3f2a9c1e-exact-nl")
    expect(facts.locator("dt:text-is('Client Secret') + dd")).to_contain_text("set")
    expect(facts.locator("dt:text-is('Authorization URL') + dd")).to_have_text(EXACT_NL[0])
    expect(facts.locator("dt:text-is('Token URL') + dd")).to_have_text(EXACT_NL[1])
    expect(facts.locator("dt:text-is('Access Token Expires In') + dd")).to_have_text("3599999 ms (about 1 hour)")
    expect(facts.locator("dt:text-is('Refresh Token Expires In') + dd")).to_have_text("7775999999 ms (about 90 days)")
    # The next step is a connection through this client.
    expect(page.locator("#next-step").get_by_role("link", name="Create a connection")).to_have_attribute(
        "href", re.compile(r"/w/acme/connections/new/\?client=")
    )
    expect(facts.locator("dt:text-is('Client authentication') + dd")).to_have_text("client_secret_post")
    expect(facts.locator("dt:text-is('PKCE') + dd")).to_have_text("off")
    expect_secret_hidden(page)
    shot(page, "client-page")

    page.get_by_role("navigation", name="Admin console").get_by_role("link", name="OAuth2.0 Clients").click()

    row = client_row(page, "Exact Online NL")
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(1)).to_have_text("Exact Online")
    expect(row.locator("td").nth(2)).to_have_text("3f2a9c1e-exact-nl")
    expect(row.locator("td").nth(3)).to_have_text("0")
    expect_secret_hidden(page)
    shot(page, "client-list")

    stored = OAuthClient.objects.get()
    assert (stored.provider, stored.site, stored.client_secret) == ("exact_online", "nl", SECRET)
    assert (stored.access_token_expires_in, stored.refresh_token_expires_in) == (3599999, 7775999999)


def test_an_admin_registers_a_generic_oauth2_client_with_advanced_settings(alice, live_server, settings):
    assert settings.OAUTH_ALLOW_INSECURE_URLS  # the test peers live on http://127.0.0.1:<port>
    peer = re.sub(r"//localhost:", "//127.0.0.1:", live_server.url)
    page = alice
    open_oauth_clients(page, live_server)
    open_register_form(page)

    field(page, "Type").select_option(label="Generic OAuth 2.0")
    expect(page.locator("[data-field=site]")).to_be_hidden()
    expect_urls(page, ("", ""))
    field(page, "Name").fill("Acme CRM")
    field(page, "Client ID").fill("crm-client")
    field(page, "Client Secret").fill(SECRET)
    field(page, "Authorization URL").fill(f"{peer}/oauth/authorize")
    field(page, "Token URL").fill(f"{peer}/oauth/token")
    expect(field(page, "Access Token Expires In (ms)")).to_have_value("3600000")
    expect(field(page, "Refresh Token Expires In (ms)")).to_have_value("0")
    # The help speaks of the chosen type, not of Exact Online.
    expect(page.locator("[data-field=access_token_expires_in] .help")).to_contain_text("a common default")
    expect(page.locator("#redirect-uri-help")).not_to_contain_text("Exact Online")
    page.get_by_text("Advanced: scopes, client authentication, PKCE, API base URL").click()
    expect(field(page, "Use PKCE (S256)")).to_be_checked()
    field(page, "Scopes").fill("openid offline_access")
    field(page, "Client authentication method").select_option(label="Form body (client_secret_post)")
    field(page, "Use PKCE (S256)").uncheck()
    field(page, "API base URL").fill(f"{peer}/api")
    shot(page, "register-generic-form")

    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("heading", level=1, name="Acme CRM")).to_be_visible()
    facts = page.locator("dl.facts")
    expect(facts.locator("dt:text-is('Type') + dd")).to_have_text("Generic OAuth 2.0")
    expect(facts.locator("dt:text-is('Token URL') + dd")).to_have_text(f"{peer}/oauth/token")
    expect(facts.locator("dt:text-is('Refresh Token Expires In') + dd")).to_have_text("never")
    expect(facts.locator("dt:text-is('Scopes') + dd")).to_have_text("openid offline_access")
    expect(facts.locator("dt:text-is('Client authentication') + dd")).to_have_text("client_secret_post")
    expect(facts.locator("dt:text-is('PKCE') + dd")).to_have_text("off")
    expect(facts.locator("dt:text-is('API base URL') + dd")).to_have_text(f"{peer}/api")
    expect(page.get_by_label("Redirect URI")).to_have_value(f"{live_server.url}/oauth2/callback")
    expect_secret_hidden(page)
    shot(page, "client-generic-page")

    stored = OAuthClient.objects.get()
    assert (stored.provider, stored.site, stored.use_pkce) == ("generic", "", False)
    assert stored.token_endpoint_auth_method == "client_secret_post"


def test_a_bad_token_url_is_shown_next_to_the_field_and_nothing_is_saved(alice, live_server, settings):
    settings.OAUTH_ALLOW_INSECURE_URLS = False
    page = alice
    open_oauth_clients(page, live_server)
    open_register_form(page)
    field(page, "Name").fill("Exact via metadata")
    field(page, "Client ID").fill("x")
    field(page, "Client Secret").fill(SECRET)
    field(page, "Token URL").fill("https://169.254.169.254/latest/meta-data/")

    page.get_by_role("button", name="Save").click()

    expect(page.locator("[data-field=token_url] .error")).to_have_text(
        "169.254.169.254 is a private, loopback or link-local address; use a public host."
    )
    expect(page.locator("#insecure-hint")).to_contain_text("OAUTH_ALLOW_INSECURE_URLS=true")
    # The secret is never put back into the page, but it is kept: no need to type it again.
    expect(field(page, "Client Secret")).to_have_value("")
    expect(page.locator("[data-field=client_secret] .help")).to_contain_text("Kept from your previous attempt")
    expect_secret_hidden(page)
    assert not OAuthClient.objects.exists()
    shot(page, "register-error")

    field(page, "Token URL").fill(EXACT_NL[1])
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("heading", level=1, name="Exact via metadata")).to_be_visible()
    assert OAuthClient.objects.get().client_secret == SECRET


def test_deleting_a_client_in_use_needs_the_confirmation_checkbox(alice, live_server, team):
    client = OAuthClient.objects.create(
        workspace=team.a,
        provider="exact_online",
        site="nl",
        name="Exact Online NL",
        client_id="id",
        client_secret=SECRET,
        authorization_url=EXACT_NL[0],
        token_url=EXACT_NL[1],
        access_token_expires_in=599999,
        token_endpoint_auth_method="client_secret_post",
        use_pkce=False,
    )
    Connection.objects.create(
        workspace=team.a, oauth_client=client, name="Acme BV", status="active", access_token="a", refresh_token="r"
    )
    page = alice
    open_oauth_clients(page, live_server)
    expect(client_row(page, "Exact Online NL").locator("td").nth(3)).to_have_text("1")
    page.get_by_role("link", name="Exact Online NL", exact=True).click()
    page.get_by_role("link", name="Delete").click()
    expect(page.get_by_role("heading", level=1, name="Delete “Exact Online NL”?")).to_be_visible()

    page.get_by_role("button", name="Delete client").click()

    expect(page.get_by_role("alert")).to_contain_text("Tick the box to confirm that these connections will be revoked.")
    shot(page, "delete-page")
    assert OAuthClient.objects.filter(id=client.id).exists()

    page.get_by_label("I understand that every connection using this client will be revoked.").check()
    page.get_by_role("button", name="Delete client").click()

    expect(page.get_by_role("heading", level=1, name="OAuth2.0 Clients")).to_be_visible()
    expect(page.get_by_text("OAuth client “Exact Online NL” deleted. 1 connection(s) were revoked.")).to_be_visible()
    expect(client_row(page, "Exact Online NL")).to_have_count(0)
    assert not OAuthClient.objects.exists()
