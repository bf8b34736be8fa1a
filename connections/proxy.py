"""The provider proxy: ``…/connections/{id}/proxy/{path}`` → ``{API base URL}/{path}``.

An integration calls the provider's API through Tokenkeeper instead of
fetching a token and calling the provider itself: Tokenkeeper adds the
connection's bearer token, keeps the provider's rate budget (Exact Online,
``connections.ratebudget``) and refreshes once after a 401 when the
provider's rules allow it. docs/proxy.md explains it for users.

- **Routing**: the OAuth client's API base URL (Exact Online:
  ``https://start.exactonline.<site>/api/v1``) + ``/`` + the path, with the
  query string as sent. Only ``Accept``, ``Accept-Encoding`` and
  ``Content-Type`` (and the body's ``Content-Length``) go along; the caller's ``Authorization`` (its API key)
  never does.
- **Path rules** (``check_path``): the path can never leave the API base. No
  ``.``/``..`` segments, no empty segment (``//``), no absolute URL or
  scheme, no backslash, no ``@``, no control character, no ``%`` left after
  the server decoded the path (double encoding), and, where the WSGI server
  passes the raw request line (gunicorn's ``RAW_URI``), no encoded ``/``,
  ``\\``, ``.`` or ``%`` in it. Refused with 400 ``path_refused`` before
  anything is sent. The URL built is checked again to start with the base.
- **Streaming**: the request body is sent as it arrives (``Content-Length``
  kept; a chunked body is passed on chunked, or with its length when it
  fits in memory), the answer is streamed back as the provider sends it (urllib3,
  ``preload_content=False``): memory does not grow with either. Connections
  to providers are pooled and kept alive (one pool per process, shared with
  the token requests), timeouts bounded (``PROXY_CONNECT_TIMEOUT``,
  ``PROXY_READ_TIMEOUT``), redirects never followed (502
  ``provider_redirect``) and the SSRF guard runs before each call.
- **401**: the provider rejected the token. When the provider's window
  allows a refresh now (``refresh_after_rejection``, once per rejected token
  however many calls saw it), the call is sent once more with the new token,
  but only if its body was small enough to have been kept
  (``PROXY_REPLAY_MAX_BYTES``, 64 KiB); a streamed body cannot be replayed
  and its 401 is answered as is. Otherwise the provider's 401 is answered.
- **Errors** in the API's one shape: the provider unreachable 502
  ``provider_unreachable``, too slow 504 ``provider_timeout``, a redirect 502
  ``provider_redirect``, the API base URL refused by the SSRF guard 502
  ``provider_url_refused``; the rate budget spent 429 ``rate_budget_spent``
  with ``Retry-After`` and the spent family's ``X-RateLimit-*`` headers.
  Every answer of the provider itself carries ``X-Tokenkeeper-Proxy: provider``.

Proxied calls are not audit events (far too many); they are counted in
``tokenkeeper_proxy_responses_total`` and ``tokenkeeper_proxy_duration_seconds``.
"""

import logging
import re
import time
from urllib.parse import quote, urlsplit

import urllib3
from django.conf import settings
from django.http import HttpRequest, StreamingHttpResponse

from common import metrics
from common.errors import ConflictError, ServiceError
from common.netguard import UnsafeURLError, assert_public_url
from common.outbound import NOT_MODIFIED, RedirectRefused

from . import ratebudget
from .access import connection_access_token
from .models import Connection
from .refresh import refresh_after_rejection
from .token_requests import pool_for

logger = logging.getLogger(__name__)

CHUNK = 64 * 1024
FORWARDED_REQUEST_HEADERS = (("HTTP_ACCEPT", "Accept"), ("HTTP_ACCEPT_ENCODING", "Accept-Encoding"))
FORWARDED_RESPONSE_HEADERS = frozenset(
    {"content-type", "content-length", "content-encoding", "etag", "last-modified", "location", "retry-after"}
)
PROXY_HEADER = ("X-Tokenkeeper-Proxy", "provider")

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
# In the raw request line: an encoded slash, backslash, dot or percent sign, or an encoded control character.
_RAW_REFUSED = re.compile(r"%(2f|5c|2e|25|[01][0-9a-f]|7f)", re.IGNORECASE)
# Characters left as they are in the path sent on (OData keys: Accounts(guid'…'), Items(ID=1,Code='x')).
_PATH_SAFE = "/()',=:;!*$+~"


class ProxyError(ServiceError):
    """An answer Tokenkeeper gives instead of the provider's: 429, 502, 504."""

    def __init__(self, message: str, *, code: str, status: int, retry_after: float | None = None, headers=None):
        super().__init__(message, code=code)
        self.status_code = status
        self.retry_after = retry_after
        self.headers = dict(headers or {})


def _refuse(message: str) -> ServiceError:
    return ServiceError(f"{message} The path must stay under the API base URL.", field="path", code="path_refused")


def check_path(path: str, *, raw_uri: str | None = None) -> str:
    """``path`` if it can only lead somewhere under the API base, else ServiceError (400 ``path_refused``).

    ``path``: what follows ``/proxy/``, as the WSGI server decoded it;
    ``raw_uri``: the request line's target as sent, when the server passes it.
    """
    if not path:
        raise _refuse("Give the API path after /proxy/, e.g. /proxy/current/Me.")
    if _CONTROL.search(path):
        raise _refuse("The path contains a control character.")
    if "\\" in path:
        raise _refuse("The path contains a backslash.")
    if "@" in path:
        raise _refuse("The path contains “@”.")
    if "%" in path:
        raise _refuse("The path contains an encoded character after decoding (double encoding).")
    if path.startswith("/") or _SCHEME.match(path):
        raise _refuse("The path must be relative, not an absolute URL.")
    segments = path.split("/")
    if path.endswith("/"):
        segments = segments[:-1]
    for segment in segments:
        if not segment:
            raise _refuse("The path contains an empty segment (“//”).")
        if segment.split(";", 1)[0] in (".", ".."):
            raise _refuse("The path contains a “.” or “..” segment.")
    if raw_uri:
        target = raw_uri.split("?", 1)[0]
        index = target.find("/proxy/")
        if index >= 0 and _RAW_REFUSED.search(target[index + len("/proxy/") :]):
            raise _refuse("The path contains an encoded “/”, “\\”, “.”, “%” or control character.")
    return path


def target_url(base: str, path: str, query: str) -> str:
    """``{base}/{path}?{query}``, checked to stay under ``base``."""
    base = base.rstrip("/")
    url = f"{base}/{quote(path, safe=_PATH_SAFE)}"
    base_parts, parts = urlsplit(base), urlsplit(url)
    if (parts.scheme, parts.netloc) != (base_parts.scheme, base_parts.netloc) or not url.startswith(base + "/"):
        raise _refuse("The path leads outside the API base URL.")
    return f"{url}?{query}" if query else url


def _content_length(request: HttpRequest) -> int:
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


def _chunked(request: HttpRequest) -> bool:
    return "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()


def _body(request: HttpRequest):
    """(body, replayable, length to send or None): small bodies in memory (can be sent again), larger
    ones as a stream; a chunked body of unknown length goes on chunked once it outgrows the memory limit."""
    limit = settings.PROXY_REPLAY_MAX_BYTES
    if _chunked(request) and not request.META.get("CONTENT_LENGTH"):
        return _chunked_body(request, limit)
    length = _content_length(request)
    if length == 0:
        return None, True, None
    if length <= limit:
        return request.read(length), True, length

    def chunks():
        left = length
        while left > 0:
            chunk = request.read(min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk

    return chunks(), False, length


def _chunked_body(request: HttpRequest, limit: int):
    """A body sent with ``Transfer-Encoding: chunked``, read from the WSGI server's input, which
    Django does not read without a Content-Length. Only a server that ends the input at the body's
    end (``wsgi.input_terminated``: gunicorn) can pass one; others get 411."""
    if not request.META.get("wsgi.input_terminated"):
        raise ProxyError(
            "This server cannot read a chunked request body: send the body with a Content-Length.",
            code="length_required",
            status=411,
        )
    stream = request.META["wsgi.input"]
    head = b""
    while len(head) <= limit:
        chunk = stream.read(min(CHUNK, limit + 1 - len(head)))
        if not chunk:
            return (head or None), True, (len(head) if head else None)
        head += chunk

    def chunks():
        yield head
        while chunk := stream.read(CHUNK):
            yield chunk

    return chunks(), False, None


def _send(method: str, url: str, pool_url: str, headers: dict, body):
    try:
        assert_public_url(url)
        response = pool_for(pool_url).urlopen(
            method,
            url,
            body=body,
            headers=headers,
            redirect=False,
            retries=False,
            preload_content=False,
            decode_content=False,
            timeout=urllib3.Timeout(connect=settings.PROXY_CONNECT_TIMEOUT, read=settings.PROXY_READ_TIMEOUT),
        )
    except UnsafeURLError as exc:
        raise ProxyError(f"The API base URL is refused: {exc}", code="provider_url_refused", status=502) from None
    except urllib3.exceptions.NewConnectionError:  # a ConnectTimeoutError subclass in urllib3 2: refused, no route
        raise ProxyError("Could not connect to the provider's API.", code="provider_unreachable", status=502) from None
    except urllib3.exceptions.TimeoutError:
        raise ProxyError("The provider's API did not answer in time.", code="provider_timeout", status=504) from None
    except urllib3.exceptions.HTTPError as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ProxyError(
            f"Could not reach the provider's API: {type(reason).__name__}.", code="provider_unreachable", status=502
        ) from None
    if 300 <= response.status < 400 and response.status != NOT_MODIFIED:
        refused = RedirectRefused(url, response.status, (response.headers.get("Location") or "")[:300])
        _discard(response)
        raise ProxyError(refused.describe("provider's API"), code="provider_redirect", status=502)
    return response


def _discard(response) -> None:
    """Drop an answer that is not passed on; its connection goes back to the pool when that is cheap."""
    try:
        response.drain_conn()
        response.release_conn()
    except Exception:
        response.close()


def _stream(response, provider: str, started: float):
    done = False
    try:
        yield from response.stream(CHUNK, decode_content=False)
        done = True
    except urllib3.exceptions.HTTPError as exc:
        logger.warning("proxied answer broke off: %s", type(exc).__name__)
    finally:
        if done:
            response.release_conn()
        else:
            response.close()
        metrics.PROXY_DURATION.labels(provider).observe(time.perf_counter() - started)


def _answer(response, provider: str, started: float) -> StreamingHttpResponse:
    metrics.PROXY_RESPONSES.labels(provider, str(response.status)).inc()
    answer = StreamingHttpResponse(_stream(response, provider, started), status=response.status)
    del answer.headers["Content-Type"]
    for name, value in response.headers.items():
        lower = name.lower()
        if lower in FORWARDED_RESPONSE_HEADERS or lower.startswith("x-ratelimit-"):
            answer.headers[name] = value
    answer.headers[PROXY_HEADER[0]] = PROXY_HEADER[1]
    return answer


def _take_budget(client, scope: str | None) -> ratebudget.Budget | None:
    """One call from the budget (what is left after it), or ProxyError 429 when it is spent."""
    if scope is None:
        return None
    try:
        taken = ratebudget.take(client.client_id, scope, client.provider_spec.api_rate_limits)
    except Exception:  # Redis away: the call goes on, and Exact's own 429 is the limit meanwhile
        logger.warning("could not take from the rate budget of %s/%s", client.client_id, scope)
        return None
    if taken is not None and not taken.allowed:
        metrics.PROXY_RESPONSES.labels(client.provider, "budget").inc()
        family = "minute" if taken.family == "minute" else "day"
        raise ProxyError(
            f"The provider's rate limit for this company is used up for this {family} "
            f"(counted by Tokenkeeper for every caller); try again in {taken.retry_after} s.",
            code="rate_budget_spent",
            status=429,
            retry_after=taken.retry_after,
            headers=taken.headers(),
        )
    return taken.budget if taken is not None else None


def forward(request: HttpRequest, *, connection: Connection, path: str) -> StreamingHttpResponse:
    """Send the request on to the provider's API and stream its answer back (see the module docstring)."""
    started = time.perf_counter()
    check_path(path, raw_uri=request.META.get("RAW_URI") or request.META.get("REQUEST_URI"))
    client = connection.oauth_client
    provider = client.provider_spec
    base = client.api_base
    if not base:
        raise ConflictError(
            "The OAuth client has no API base URL: set one to call its API through Tokenkeeper.",
            code="no_api_base_url",
        )
    url = target_url(base, path, request.META.get("QUERY_STRING", ""))
    pool_url = base.rstrip("/") + "/"
    token = connection_access_token(connection=connection)
    scope = provider.api_rate_scope(path) if provider.api_rate_limits else None
    body, replayable, length = _body(request)  # before the budget: a body that cannot be sent costs no call
    budget = _take_budget(client, scope)

    # Accept-Encoding too: a compressed answer is passed through as it is (Content-Encoding kept).
    headers = {name: request.META[key] for key, name in FORWARDED_REQUEST_HEADERS if request.META.get(key)}
    if body is not None:  # a Content-Type without a body says nothing
        if length is not None:  # else urllib3 sends the stream chunked
            headers["Content-Length"] = str(length)
        if request.META.get("CONTENT_TYPE"):
            headers["Content-Type"] = request.META["CONTENT_TYPE"]
    method = request.method
    headers["Authorization"] = f"Bearer {token.access_token}"
    try:
        response = _send(method, url, pool_url, headers, body)
        if response.status == 401 and replayable:
            retry_token = _token_after_rejection(connection, token.access_token)
            if retry_token:
                _discard(response)
                budget = _take_budget(client, scope)
                headers["Authorization"] = f"Bearer {retry_token}"
                response = _send(method, url, pool_url, headers, body)
    except ProxyError as exc:
        if exc.status_code != 429:
            metrics.PROXY_RESPONSES.labels(client.provider, "error").inc()
        raise
    if scope is not None:
        try:
            ratebudget.seed(client.client_id, scope, response.headers, known=budget)
        except Exception:  # Redis away: the answer still goes back
            logger.warning("could not store the rate budget of %s/%s", client.client_id, scope)
    return _answer(response, client.provider, started)


def _token_after_rejection(connection: Connection, rejected: str) -> str | None:
    """A new access token after the provider's 401, when one may be had now; else None."""
    result = refresh_after_rejection(connection=connection, rejected_token=rejected)
    fresh = result.connection
    if fresh is None or not fresh.access_token or str(fresh.access_token) == rejected:
        logger.info("proxy: 401 for connection %s, no refresh: %s", connection.id, result.message)
        return None
    return str(fresh.access_token)
