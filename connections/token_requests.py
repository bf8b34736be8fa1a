"""The refresh engine's token requests: the hot path, hundreds a second.

Authlib builds the request (``prepare_token_request``) and authenticates the
client (``ClientAuth``: client_secret_basic or client_secret_post), exactly as
its session does for the authorization-code exchange (``connections.oauth``);
urllib3 sends it on a keep-alive connection from one process-wide pool per
endpoint. That skips what a ``requests``/Authlib session does per call that a
refresh never needs — building a session and an auth object, merging the
environment, hooks, cookies — which cost a third of a refresh's CPU
(docs/benchmarks.md, "Where a refresh's CPU goes").

The outbound rules still hold (``common.outbound``): the SSRF guard right
before each request, no redirect followed (a 3xx is a transient failure that
names the target), bounded timeouts; proxies and the CA bundle come from the
environment as ``requests`` would read them, once per endpoint.
"""

import json
import os
import threading

import urllib3
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_token_request
from django.conf import settings
from requests.utils import DEFAULT_CA_BUNDLE_PATH

from common import metrics
from common.netguard import UnsafeURLError, assert_public_url
from common.outbound import NOT_MODIFIED, RedirectRefused

from . import oauth
from .oauth import PERMANENT, TRANSIENT, TokenEndpointError, TokenSet, classify_answer, token_set

HEADERS = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"}
# Keep-alive connections kept per endpoint: one per token request in flight (REFRESH_THREADS) is enough.
POOL_CONNECTIONS = 16

_pools: dict[tuple, urllib3.PoolManager] = {}
_pools_lock = threading.Lock()


@metrics.count_token_endpoint  # tokenkeeper_token_endpoint_responses_total (common/metrics.py)
def refresh_tokens(client, *, refresh_token: str) -> TokenSet:
    """Exchange ``refresh_token`` at the client's token endpoint; raises TokenEndpointError."""
    url, headers, body = token_request(client, refresh_token=refresh_token)
    status, answer_headers, data = _post(url, headers, body)
    if status >= 400 or "error" in data:
        raise classify_answer(
            status,
            answer_headers,
            error=str(data.get("error") or ""),
            description=str(data.get("error_description") or ""),
        )
    return token_set(data)


def token_request(client, *, refresh_token: str) -> tuple[str, dict, str]:
    """(url, headers, form body) of a refresh, built by Authlib.

    With ``client_secret_post`` Authlib's ``ClientAuth`` decodes the form and
    encodes it again to append the client's credentials (a tenth of a
    refresh's CPU with a long refresh token); the credentials are encoded on
    their own instead and appended: the same bytes
    (``test_the_form_is_what_authlib_builds``).
    """
    extra = {"scope": client.scopes} if client.scopes else {}
    body = prepare_token_request("refresh_token", refresh_token=refresh_token, **extra)
    method = client.token_endpoint_auth_method
    auth = ClientAuth(client.client_id, client.client_secret, method)
    if method != "client_secret_post":
        return auth.prepare("POST", client.token_url, dict(HEADERS), body)
    url, headers, credentials = auth.prepare("POST", client.token_url, dict(HEADERS), "")
    return url, headers, f"{body}&{credentials}"


def _post(url: str, headers: dict, body: str) -> tuple[int, dict, dict]:
    try:
        assert_public_url(url)
        response = _pool_for(url).request(
            "POST",
            url,
            body=body.encode(),
            headers=headers,
            redirect=False,
            retries=False,
            timeout=urllib3.Timeout(connect=oauth.TIMEOUT[0], read=oauth.TIMEOUT[1]),
        )
    except UnsafeURLError as exc:
        raise TokenEndpointError(f"Token URL refused: {exc}", kind=PERMANENT) from None
    except urllib3.exceptions.HTTPError as exc:
        reason = getattr(exc, "reason", None) or exc
        raise TokenEndpointError(
            f"Could not reach the token endpoint: {type(reason).__name__}.", kind=TRANSIENT
        ) from None
    if 300 <= response.status < 400 and response.status != NOT_MODIFIED:
        # Transient, not permanent: the refresh token went only to the configured URL.
        refused = RedirectRefused(url, response.status, (response.headers.get("Location") or "")[:300])
        raise TokenEndpointError(refused.describe("token endpoint"), kind=TRANSIENT, status=response.status)
    try:
        data = json.loads(response.data or b"{}")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        if response.status >= 400:
            return response.status, response.headers, {}
        raise TokenEndpointError(
            f"The provider answered HTTP {response.status} with a body that is not a token response.",
            kind=TRANSIENT,
            status=response.status,
        )
    return response.status, response.headers, data


def _pool_for(url: str) -> urllib3.PoolManager:
    """This process's connection pool for ``url``, set up from the environment as requests would.

    Pools are thread-safe and keyed by the environment's answer (proxy, CA
    bundle, client certificate), which is read once per endpoint
    (``oauth.environment_settings``).
    """
    env = oauth.environment_settings(url)
    scheme = url.split(":", 1)[0].lower()
    proxy = _proxy_for(env["proxies"], scheme)
    verify, cert = env["verify"], env["cert"]
    key = (os.getpid(), proxy, verify, cert)  # a forked worker process makes its own
    pool = _pools.get(key)
    if pool is None:
        with _pools_lock:
            pool = _pools.get(key) or _new_pool(proxy, verify, cert)
            _pools[key] = pool
    return pool


# The provider proxy (connections/proxy.py) sends its calls on the same pools.
pool_for = _pool_for


def _proxy_for(proxies: dict, scheme: str) -> str | None:
    return proxies.get(scheme) or proxies.get("all") or None


def _new_pool(proxy: str | None, verify, cert) -> urllib3.PoolManager:
    tls = (
        {"cert_reqs": "CERT_NONE"}
        if verify is False
        else {
            "cert_reqs": "CERT_REQUIRED",
            "ca_certs": verify if isinstance(verify, str) else DEFAULT_CA_BUNDLE_PATH,
        }
    )
    if isinstance(cert, tuple):
        tls.update(cert_file=cert[0], key_file=cert[1])
    elif cert:
        tls["cert_file"] = cert
    if proxy:
        return urllib3.ProxyManager(proxy, num_pools=16, maxsize=_pool_size(), **tls)
    return urllib3.PoolManager(num_pools=64, maxsize=_pool_size(), **tls)


def _pool_size() -> int:
    return max(POOL_CONNECTIONS, settings.REFRESH_THREADS)


def reset_pools() -> None:
    """Forget the pools (after the environment changed; a forked process gets its own anyway)."""
    with _pools_lock:
        _pools.clear()
