"""Exact Online. Facts and their public sources: docs/exact-online.md.

- one host per country site; a client only works on the site of its app;
- client credentials in the form body (client_secret_post);
- ``expires_in`` is a string ("600"); access tokens live 600 s;
- a refresh is only accepted in the last 30 s before expiry;
- every refresh rotates the refresh token (the old one dies at once);
- identity from ``/api/v1/current/Me``.

API base and identity endpoint derive from the token URL's origin, so a
client pointed at another host (an emulator, a proxy) talks to that host.
"""

from dataclasses import dataclass

from common.errors import ServiceError

from .base import CLIENT_SECRET_POST, ApiRateLimits, Identity, Provider, RefreshPolicy, origin_of

SITES = {
    "nl": "Netherlands (exactonline.nl)",
    "be": "Belgium (exactonline.be)",
    "de": "Germany (exactonline.de)",
    "co.uk": "United Kingdom (exactonline.co.uk)",
    "com": "United States (exactonline.com)",
    "es": "Spain (exactonline.es)",
    "fr": "France (exactonline.fr)",
}


def site_urls(site: str) -> dict[str, str]:
    host = f"https://start.exactonline.{site}"
    return {"authorization_url": f"{host}/api/oauth2/auth", "token_url": f"{host}/api/oauth2/token"}


@dataclass(frozen=True)
class ExactOnline(Provider):
    def site_urls(self, site: str) -> dict[str, str]:
        return site_urls(site or self.default_site)

    def clean_site(self, site: str | None) -> str:
        site = site or self.default_site
        if site not in self.sites:
            raise ServiceError(f"Choose an Exact Online site: {', '.join(self.sites)}.", field="site")
        return site

    def resolved_api_base_url(self, client) -> str:
        return f"{origin_of(client.token_url)}/api/v1"

    def api_rate_scope(self, path: str) -> str | None:
        """The division (``{division}/crm/Accounts``): Exact counts calls per app and company.
        ``current/Me`` and other calls outside a division are not counted."""
        division = path.split("/", 1)[0]
        return division if division.isdigit() else None

    def resolved_identity_url(self, client) -> str:
        return f"{origin_of(client.token_url)}/api/v1/current/Me"

    def parse_identity(self, data: dict) -> Identity:
        me = data["d"]["results"][0]
        return Identity(
            account_id=str(me.get("UserID", "")),
            name=str(me.get("FullName") or me.get("UserName") or ""),
            email=str(me.get("Email") or ""),
            extra={
                "UserID": me.get("UserID"),
                "UserName": me.get("UserName"),
                "Email": me.get("Email"),
                "Division": me.get("CurrentDivision"),
                "DivisionCustomerName": me.get("DivisionCustomerName"),
            },
        )


PROVIDER = ExactOnline(
    key="exact_online",
    name="Exact Online",
    **site_urls("nl"),
    token_endpoint_auth_method=CLIENT_SECRET_POST,
    use_pkce=False,
    api_base_url="https://start.exactonline.nl/api/v1",
    identity_url="https://start.exactonline.nl/api/v1/current/Me",
    access_token_expires_in_ms=599_999,
    refresh_token_expires_in_ms=30 * 24 * 3600 * 1000,
    rotates_refresh_token=True,
    single_grant_per_account=True,
    # Exact: refresh only in the last 30 s, at most 10 errors an hour per
    # endpoint and 200 token requests a day per user (docs/exact-online.md).
    refresh_policy=RefreshPolicy(window_seconds=30, aim_after_open=5, error_budget=10, daily_token_budget=200),
    api_rate_limits=ApiRateLimits(per_minute=60, per_day=5000),
    docs_url="https://support.exactonline.com/community/s/knowledge-base#All-All-DNO-Content-oauth-eol-oauth-dev-step3",
    sites=SITES,
    default_site="nl",
    # Exact documents only credentials in the form body, and no PKCE.
    fixed_fields=("token_endpoint_auth_method", "use_pkce"),
)
