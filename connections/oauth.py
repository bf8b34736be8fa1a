"""Talking to a provider's OAuth 2.0 endpoints, through Authlib.

Authlib builds the authorization URL (state, PKCE S256), authenticates the
client at the token endpoint (client_secret_basic or client_secret_post) and
parses token responses. This module adds what a refresh engine needs on top:
the HTTP status and headers of a failed token request, classified as
transient, permanent or "too early". Every call goes through
``common.outbound``'s guard: the SSRF check right before sending, and no
redirect followed (a redirect is a transient failure with a clear message:
the secret or token went only to the configured URL).
"""

import functools
import logging
import os
import secrets
import threading
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from django.utils import timezone
from requests.adapters import HTTPAdapter

from common.netguard import UnsafeURLError
from common.outbound import GuardedSessionMixin, RedirectRefused
from common.outbound import request as outbound_request

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10
# Long enough that we never give up on a response the provider already sent:
# with rotating refresh tokens a lost response kills the connection.
READ_TIMEOUT = 90
TIMEOUT = (CONNECT_TIMEOUT, READ_TIMEOUT)

TRANSIENT, PERMANENT, TOO_EARLY = "transient", "permanent", "too_early"


@dataclass
class TokenSet:
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int | None
    refresh_expires_in: int | None
    scope: str
    raw_keys: list[str] = field(default_factory=list)


class TokenEndpointError(Exception):
    """A token request that did not yield tokens; ``kind`` says what to do next."""

    def __init__(
        self, message: str, *, kind: str, status: int | None = None, error: str = "", retry_after: float | None = None
    ):
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status = status
        self.error = error
        self.retry_after = retry_after


class IdentityError(Exception):
    pass


def _seconds(value) -> int | None:
    """``expires_in`` may be a number or a string ("600")."""
    if value in (None, ""):
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max((parsedate_to_datetime(value) - timezone.now()).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None


class GuardedOAuth2Session(GuardedSessionMixin, OAuth2Session):
    """Authlib's session with the outbound rules: SSRF check per request, no redirects."""


def _session(client, **kwargs) -> OAuth2Session:
    return GuardedOAuth2Session(
        client_id=client.client_id,
        client_secret=client.client_secret,
        token_endpoint_auth_method=client.token_endpoint_auth_method,
        redirect_uri=client.redirect_uri,
        scope=client.scopes or None,
        **kwargs,
    )


def new_pkce_verifier() -> str:
    return secrets.token_urlsafe(64)[:96]


def authorization_url(client, *, state: str, code_verifier: str | None) -> str:
    extra = dict(client.provider_spec.extra_authorize_params)
    session = _session(client, code_challenge_method="S256" if code_verifier else None)
    url, _ = session.create_authorization_url(
        client.authorization_url, state=state, code_verifier=code_verifier, **extra
    )
    return url


def token_set(token: dict) -> TokenSet:
    return TokenSet(
        access_token=str(token.get("access_token") or ""),
        refresh_token=str(token.get("refresh_token") or ""),
        token_type=str(token.get("token_type") or "bearer"),
        expires_in=_seconds(token.get("expires_in")),
        refresh_expires_in=_seconds(token.get("refresh_token_expires_in") or token.get("refresh_expires_in")),
        scope=" ".join(token["scope"]) if isinstance(token.get("scope"), list) else str(token.get("scope") or ""),
        raw_keys=sorted(token.keys()),
    )


def _classify(response: requests.Response | None, exc: Exception) -> TokenEndpointError:
    if response is None:
        return TokenEndpointError(f"Could not reach the token endpoint: {type(exc).__name__}.", kind=TRANSIENT)
    return classify_answer(
        response.status_code,
        response.headers,
        error=getattr(exc, "error", "") or "",
        description=getattr(exc, "description", "") or "",
    )


def classify_answer(status: int, headers, *, error: str, description: str) -> TokenEndpointError:
    """A token endpoint's refusal: transient (retry), too early (retry inside the window) or permanent."""
    retry_after = parse_retry_after(headers.get("Retry-After"))
    detail = f"{error}: {description}" if description else error or f"HTTP {status}"
    if status == 429 or status >= 500:
        return TokenEndpointError(
            f"The provider answered HTTP {status} ({detail}).",
            kind=TRANSIENT,
            status=status,
            error=error,
            retry_after=retry_after,
        )
    if headers.get("Reason") == "TooEarlyToRefreshTokens" or "not expired" in description:
        return TokenEndpointError(
            f"The provider refused an early refresh ({detail}).",
            kind=TOO_EARLY,
            status=status,
            error=error,
            retry_after=retry_after,
        )
    return TokenEndpointError(
        f"The provider refused the request: {detail} (HTTP {status}).", kind=PERMANENT, status=status, error=error
    )


_pools = threading.local()


def _connection_pool() -> HTTPAdapter:
    """This thread's keep-alive connections to token endpoints, reused from one request to the next.

    A refresh engine calls the same few token endpoints all day: reusing the
    connection saves a TCP (and in production a TLS) handshake per refresh.
    Per thread, as requests' connection pools are not meant to be shared
    between threads, and per process (a forked worker starts its own).
    """
    if getattr(_pools, "pid", None) != os.getpid():
        _pools.adapter = HTTPAdapter()
        _pools.pid = os.getpid()
    return _pools.adapter


@functools.lru_cache(maxsize=512)
def environment_settings(url: str) -> dict:
    """What requests reads from the environment for ``url`` (HTTPS_PROXY,
    NO_PROXY, REQUESTS_CA_BUNDLE …), looked up once per process and endpoint
    instead of on every request: the lookup scans os.environ and cost a fifth
    of a token request's CPU (docs/benchmarks.md)."""
    settings = requests.Session().merge_environment_settings(url, {}, None, None, None)
    return {"proxies": settings["proxies"], "verify": settings["verify"], "cert": settings["cert"]}


def _token_request(client, call) -> TokenSet:
    seen: dict[str, requests.Response] = {}

    def keep(resp):
        seen["response"] = resp
        return resp

    session = _session(client)
    session.trust_env = False  # read once by environment_settings
    pool = _connection_pool()
    for prefix in ("https://", "http://"):
        session.mount(prefix, pool)
    session.register_compliance_hook("access_token_response", keep)
    session.register_compliance_hook("refresh_token_response", keep)
    try:
        # Not closed: that would close the thread's pool. The session holds nothing else.
        return token_set(call(session))
    except UnsafeURLError as exc:  # before ValueError, its base class
        raise TokenEndpointError(f"Token URL refused: {exc}", kind=PERMANENT) from None
    except RedirectRefused as exc:
        # Transient, not permanent: a misconfigured or hijacked endpoint should not
        # destroy the connection; the refresh token went only to the configured URL.
        raise TokenEndpointError(exc.describe("token endpoint"), kind=TRANSIENT, status=exc.status) from None
    except (OAuthError, requests.HTTPError, ValueError) as exc:
        raise _classify(seen.get("response"), exc) from None
    except requests.RequestException as exc:
        raise _classify(None, exc) from None


def exchange_code(client, *, code: str, code_verifier: str | None) -> TokenSet:
    kwargs = {"code_verifier": code_verifier} if code_verifier else {}
    return _token_request(
        client,
        lambda s: s.fetch_token(
            client.token_url,
            grant_type="authorization_code",
            code=code,
            timeout=TIMEOUT,
            **kwargs,
            **environment_settings(client.token_url),
        ),
    )


def fetch_identity(client, *, access_token: str):
    """Ask the provider who connected; None when the provider has no identity endpoint."""
    provider = client.provider_spec
    url = provider.resolved_identity_url(client)
    if not url:
        return None
    try:
        response = outbound_request(
            "GET",
            url,
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
            timeout=(CONNECT_TIMEOUT, 30),
        )
    except RedirectRefused as exc:
        raise IdentityError(exc.describe("identity endpoint")) from None
    except (UnsafeURLError, requests.RequestException) as exc:
        raise IdentityError(f"Could not reach the identity endpoint: {type(exc).__name__}.") from None
    if response.status_code != 200:
        raise IdentityError(f"The identity endpoint answered HTTP {response.status_code}.")
    try:
        return provider.parse_identity(response.json())
    except (ValueError, KeyError, IndexError, TypeError):
        raise IdentityError("The identity endpoint returned a response we could not read.") from None
