"""The interface every provider implements, and the data a preset is made of.

A provider says how to talk to one kind of OAuth 2.0 server: default URLs,
how the client authenticates at the token endpoint, whether PKCE is used,
when a token's refresh is due, whether refresh tokens rotate, and how to
read the connected account's identity.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

CLIENT_SECRET_POST = "client_secret_post"
CLIENT_SECRET_BASIC = "client_secret_basic"
AUTH_METHODS = [
    (CLIENT_SECRET_BASIC, "HTTP Basic (client_secret_basic)"),
    (CLIENT_SECRET_POST, "Form body (client_secret_post)"),
]


@dataclass(frozen=True)
class Identity:
    """Who the connected account is, as the provider tells it."""

    account_id: str = ""
    name: str = ""
    email: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RefreshPolicy:
    """When to refresh an access token.

    ``window_seconds`` set: the provider only accepts a refresh inside the last
    N seconds before expiry (Exact Online: 30); we aim ``aim_after_open``
    seconds after the window opens. Otherwise refresh a margin before expiry:
    ``margin_fraction`` of the lifetime, at least ``min_margin_seconds``.
    """

    window_seconds: int | None = None
    aim_after_open: int = 5
    margin_fraction: float = 0.10
    min_margin_seconds: int = 60

    def due_at(self, expires_at: datetime, lifetime_seconds: float) -> datetime:
        if self.window_seconds is not None:
            lead = max(self.window_seconds - self.aim_after_open, 1)
            return expires_at - timedelta(seconds=lead)
        margin = max(lifetime_seconds * self.margin_fraction, self.min_margin_seconds)
        margin = min(margin, lifetime_seconds / 2) if lifetime_seconds > 0 else margin
        return expires_at - timedelta(seconds=margin)

    def window_opens_at(self, expires_at: datetime) -> datetime | None:
        if self.window_seconds is None:
            return None
        return expires_at - timedelta(seconds=self.window_seconds)


@dataclass(frozen=True)
class Provider:
    key: str
    name: str
    authorization_url: str = ""
    token_url: str = ""
    scopes: str = ""
    token_endpoint_auth_method: str = CLIENT_SECRET_BASIC
    use_pkce: bool = True
    api_base_url: str = ""
    identity_url: str = ""
    access_token_expires_in_ms: int = 3_600_000
    refresh_token_expires_in_ms: int = 0
    rotates_refresh_token: bool = False
    refresh_policy: RefreshPolicy = field(default_factory=RefreshPolicy)
    docs_url: str = ""
    extra_authorize_params: dict[str, str] = field(default_factory=dict)
    # Country sites (key → label), each with its own URLs; empty for one-host providers.
    sites: dict[str, str] = field(default_factory=dict)
    default_site: str = ""
    # Client settings the provider dictates: always its own value, whatever the admin sent.
    fixed_fields: tuple[str, ...] = ()

    def site_urls(self, site: str) -> dict[str, str]:
        """The URLs a country site brings (``authorization_url``, ``token_url``); none without sites."""
        return {}

    def clean_site(self, site: str | None) -> str:
        """The site a client of this provider uses: ``""`` for providers without sites."""
        return ""

    def fixed_settings(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.fixed_fields}

    def resolved_api_base_url(self, client) -> str:
        return client.api_base_url or self.api_base_url

    def resolved_identity_url(self, client) -> str:
        return client.identity_url or self.identity_url

    def parse_identity(self, data: dict) -> Identity:
        """Read an OpenID-Connect-style userinfo document."""
        return Identity(
            account_id=str(data.get("sub") or data.get("id") or data.get("user_id") or ""),
            name=str(data.get("name") or data.get("preferred_username") or data.get("username") or ""),
            email=str(data.get("email") or ""),
            extra={},
        )

    def as_defaults(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "authorization_url": self.authorization_url,
            "token_url": self.token_url,
            "scopes": self.scopes,
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
            "use_pkce": self.use_pkce,
            "api_base_url": self.api_base_url,
            "identity_url": self.identity_url,
            "access_token_expires_in": self.access_token_expires_in_ms,
            "refresh_token_expires_in": self.refresh_token_expires_in_ms,
            "rotates_refresh_token": self.rotates_refresh_token,
            "refresh_window_seconds": self.refresh_policy.window_seconds,
            "docs_url": self.docs_url,
            "sites": {site: {"label": label, **self.site_urls(site)} for site, label in self.sites.items()},
        }


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
