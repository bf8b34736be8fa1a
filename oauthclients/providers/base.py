"""The interface every provider implements, and the data a preset is made of.

A provider says how to talk to one kind of OAuth 2.0 server: default URLs,
how the client authenticates at the token endpoint, whether PKCE is used,
when a token's refresh is due, whether refresh tokens rotate, and how to
read the connected account's identity.
"""

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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
    """When to refresh an access token, and how to retry when the provider stumbles.

    Timing: ``window_seconds`` set: the provider only accepts a refresh inside
    the last N seconds before expiry (Exact Online: 30); we aim
    ``aim_after_open`` seconds after the window opens. Otherwise refresh a
    margin before expiry: ``margin_fraction`` of the lifetime, at least
    ``min_margin_seconds``.

    Retries (docs/refresh-engine.md, "Failures"): a transient failure while
    the access token is still valid is retried before it expires, at least
    ``retry_seconds`` apart, spreading what is left of the error budget over
    the time left; after expiry, exponential backoff. Never more than
    ``error_budget`` failed token requests per connection in any
    ``error_budget_seconds`` (Exact Online: 10 an hour, then it blocks the
    app). ``daily_token_budget``: token requests per connection and UTC day
    the provider allows (Exact Online: 200); retries and manual refreshes
    never eat into what the day's scheduled refreshes still need.
    """

    window_seconds: int | None = None
    aim_after_open: int = 5
    margin_fraction: float = 0.10
    min_margin_seconds: int = 60
    retry_seconds: float = 3.0
    error_budget: int = 10
    error_budget_seconds: int = 3600
    daily_token_budget: int | None = None

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

    def error_budget_frees_at(self, errors: list[datetime]) -> datetime | None:
        """``errors``: failed token requests in the last ``error_budget_seconds``.
        None while another may fail; else when the oldest that counts ages out."""
        if len(errors) < self.error_budget:
            return None
        oldest_counting = sorted(errors)[len(errors) - self.error_budget]
        return oldest_counting + timedelta(seconds=self.error_budget_seconds)

    def retry_delay(
        self, *, now: datetime, expires_at: datetime | None, errors: list[datetime], backoff: float
    ) -> float:
        """Seconds until the next attempt after a transient failure (before jitter).

        ``errors`` includes the failure just seen; ``backoff`` is the engine's
        exponential backoff for this many failures in a row.
        """
        if frees_at := self.error_budget_frees_at(errors):
            return max((frees_at - now).total_seconds(), backoff)
        if expires_at is not None and now < expires_at:
            left = self.error_budget - len(errors)
            return max(self.retry_seconds, (expires_at - now).total_seconds() / (left + 1))
        return backoff

    def refresh_every(self, lifetime_seconds: float) -> float:
        """Seconds between scheduled refreshes of a token that lives ``lifetime_seconds``."""
        issued = datetime.min.replace(tzinfo=UTC)
        due = self.due_at(issued + timedelta(seconds=lifetime_seconds), lifetime_seconds)
        return max((due - issued).total_seconds(), 1.0)

    def scheduled_refreshes_left_today(self, now: datetime, lifetime_seconds: float) -> int:
        """How many refreshes the rest of this UTC day needs to keep a token fresh."""
        if not self.daily_token_budget or lifetime_seconds <= 0:
            return 0
        midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        return math.ceil((midnight - now).total_seconds() / self.refresh_every(lifetime_seconds))

    def daily_budget_tight(self, now: datetime, calls_today: int, lifetime_seconds: float) -> bool:
        """True when the day's remaining scheduled refreshes need every token request the budget has left.

        Never for tokens so short-lived that their scheduled refreshes alone
        exceed the budget (the budget cannot hold them anyway; test lifetimes).
        """
        if not self.daily_token_budget:
            return False
        needed = self.scheduled_refreshes_left_today(now, lifetime_seconds)
        return needed < self.daily_token_budget <= calls_today + needed


@dataclass(frozen=True)
class ApiRateLimits:
    """Calls the provider's data API allows per (app, company), which Tokenkeeper's proxy
    keeps as a shared budget (connections/ratebudget.py). Exact Online: 60 a minute, 5,000 a day."""

    per_minute: int
    per_day: int


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
    # The provider keeps one refresh-token chain per (app, account): a new
    # authorization ends the older one (connections/grants.py).
    single_grant_per_account: bool = False
    refresh_policy: RefreshPolicy = field(default_factory=RefreshPolicy)
    docs_url: str = ""
    extra_authorize_params: dict[str, str] = field(default_factory=dict)
    # Country sites (key → label), each with its own URLs; empty for one-host providers.
    sites: dict[str, str] = field(default_factory=dict)
    default_site: str = ""
    # Client settings the provider dictates: always its own value, whatever the admin sent.
    fixed_fields: tuple[str, ...] = ()
    # The data API's limits the proxy counts (None: the provider's 429s are passed through as they come).
    api_rate_limits: ApiRateLimits | None = None

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

    def api_rate_scope(self, path: str) -> str | None:
        """Which of the app's rate budgets a proxied call to ``path`` spends (None: none is kept)."""
        return None

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
            "single_grant_per_account": self.single_grant_per_account,
            "refresh_window_seconds": self.refresh_policy.window_seconds,
            "docs_url": self.docs_url,
            "sites": {site: {"label": label, **self.site_urls(site)} for site, label in self.sites.items()},
        }


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
