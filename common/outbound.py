"""Outgoing HTTP to URLs that people configured: token, identity and API endpoints, webhooks.

Every such call goes through a ``GuardedSession`` (or ``request()``), which

- runs the SSRF guard (``common.netguard``) on the URL right before sending,
  so a name that now resolves somewhere private is refused;
- never follows a redirect: a 3xx answer raises ``RedirectRefused`` naming
  where it pointed. Following it would send the request (with a client
  secret, a refresh token or an access token in it) to a host nobody checked;
- always has a timeout.

Use it for any new outgoing call (proxy, webhook sender) instead of
``requests`` directly, so these rules cannot be forgotten.
"""

import requests

from common.netguard import assert_public_url

DEFAULT_TIMEOUT = (10, 30)  # connect, read (seconds)
NOT_MODIFIED = 304


class RedirectRefused(Exception):
    """The endpoint answered with a redirect, which Tokenkeeper does not follow."""

    def __init__(self, url: str, status: int, location: str):
        self.url = url
        self.status = status
        self.location = location
        super().__init__(self.describe("endpoint"))

    def describe(self, endpoint: str) -> str:
        """``describe("token endpoint")``: a sentence for an error message or ``last_error``."""
        target = f"a redirect (HTTP {self.status}) to {self.location}" if self.location else f"HTTP {self.status}"
        return f"The {endpoint} answered with {target}; Tokenkeeper does not follow redirects."


class GuardedSessionMixin:
    """Mix into a ``requests.Session`` (or a subclass such as Authlib's OAuth2Session).

    The rules sit in ``send``, through which every request of a session goes.
    """

    def send(self, request, **kwargs):
        assert_public_url(request.url)
        kwargs["allow_redirects"] = False
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = DEFAULT_TIMEOUT
        response = super().send(request, **kwargs)
        if 300 <= response.status_code < 400 and response.status_code != NOT_MODIFIED:
            location = response.headers.get("Location", "")
            response.close()
            raise RedirectRefused(request.url, response.status_code, location[:300])
        return response


class GuardedSession(GuardedSessionMixin, requests.Session):
    pass


def request(method: str, url: str, **kwargs) -> requests.Response:
    """One guarded request; raises UnsafeURLError, RedirectRefused or requests' own errors."""
    with GuardedSession() as session:
        return session.request(method, url, **kwargs)
