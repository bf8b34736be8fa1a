"""A live HTTP emulator of Exact Online's OAuth 2.0 endpoints, data API and
webhooks (stdlib only).

Start it as a real server on ``127.0.0.1`` (random free port) and point the
code under test at :attr:`ExactOnlineEmulator.base_url`::

    with ExactOnlineEmulator(clients={"cid": "secret"}) as exact:
        exact.base_url            # http://127.0.0.1:54321
        code = exact.issue_code("cid", "https://tk.example/cb", user="alice")

Behaviour follows ``docs/exact-online.md`` (the repository's collection of
Exact Online facts, each with its public source). Where this docstring names a
source that is not Exact's own documentation it says "second-hand"; where the
emulator has to guess it says "assumption".

OAuth
-----
* ``GET/POST /api/oauth2/auth`` -- consent page (Allow / Deny); unknown client
  gives a 400 page "Client with identifier '...' not found".  Codes contain a
  ``!`` (sent URL-encoded as ``%21``), live ``code_lifetime`` seconds, once.
* ``POST /api/oauth2/token`` -- ``client_secret_post`` only (HTTP Basic alone
  is ``400 invalid_client``); grants ``authorization_code`` and
  ``refresh_token``.  ``expires_in`` is a JSON *string*.  Refresh tokens
  rotate; reuse of an old one is ``401 unauthorized_client "Old refresh token
  used."``; refreshing earlier than ``refresh_window`` seconds before the
  current access token expires is ``400 access_denied`` with header
  ``Reason: TooEarlyToRefreshTokens``; an expired refresh token is
  ``400 invalid_request "The refresh token expired at ..."``; anything else
  unknown is ``400 invalid_grant``.
* One grant per (app, Exact user) -- ``single_grant_per_user=True``: Exact
  keeps one refresh-token chain per app and user; when the same user
  authorizes the same app again the older chain stops working (second-hand:
  Invantive forum thread 1838).  A new grant (code exchange or
  :meth:`~ExactOnlineEmulator.issue_tokens`) for a (client_id, username) with
  a live grant *supersedes* it: the old grant's refresh tokens (current and
  rotated-away) answer ``400 {"error":"invalid_grant"}`` with outcome
  ``superseded_refresh_token`` (assumption: the body Exact gives for any
  invalid refresh token) and its access tokens answer 401 on ``/api``.
  See :attr:`~ExactOnlineEmulator.superseded_refresh_token_requests` and
  :attr:`~ExactOnlineEmulator.supersessions`.  On by default (as Exact does);
  ``single_grant_per_user=False`` keeps every grant alive.

Exact's token budgets (recorded always, enforced on request)
------------------------------------------------------------
Exact announced for 1 July 2021 (quoted second-hand, Invantive forum thread
1040 "New Exact Online API limitations"): "Maximum of 200 token endpoint calls
per API key, per user, per day" and "No more than 10 errors per API key, per
user, per company, per endpoint, and per hour. When you exceed this limit, your
API key will be temporarily blocked ... The block will automatically be lifted
after one hour and will gradually increase when you continue making these
errors"; Invantive thread 1336 quotes the same specification: "Response code
400, 401, 403, and 404 are counted as errors".

* Every token request that got an answer is counted per ``(client_id,
  username)`` and per UTC day of the emulator clock (assumption: Exact's day
  boundary is not public; its daily API count resets after midnight, says
  the orderchief.com blog):
  :meth:`~ExactOnlineEmulator.token_requests_today`,
  :meth:`~ExactOnlineEmulator.max_token_requests_in_any_day`.  The username is
  the grant's (refresh) or the code's user; ``None`` when the emulator cannot
  tell (unknown refresh token or code).  The token endpoint is not division
  scoped, so "per company" plays no part here.
* Every answer whose status is in ``error_budget_statuses`` (default 400, 401,
  403, 404 per the quote above -- *not* 5xx and not 429, so injected 500s and
  "blocked" answers do not count; pass e.g. ``range(400, 600)`` to count every
  non-2xx) is an *error*, with its emulator time:
  :meth:`~ExactOnlineEmulator.errors_in_last_hour` (sliding 3600 s),
  :meth:`~ExactOnlineEmulator.max_errors_in_any_hour`,
  :attr:`~ExactOnlineEmulator.token_error_requests`.
* ``enforce_error_budget=True`` (default off): a request whose answer would be
  the ``error_budget + 1``-th (11th) error within 3600 s is answered "blocked"
  instead, and so is every token request of that (client_id, username) for the
  next ``error_block_seconds`` (3600) of emulator time, without being
  processed.  Outcome ``blocked``.  The answer is an assumption (Exact's exact
  wording is not public): ``429 {"error":"too_many_requests",
  "error_description":"API key blocked: too many errors in the last hour"}``
  without ``Retry-After``.  The growing block on repeat offences is not
  emulated.
* ``enforce_daily_token_limit=True`` (default off): the ``daily_token_limit +
  1``-th (201st) token request of a (client_id, username) in a day is refused
  without being processed: ``429 {"error":"too_many_requests",
  "error_description":"Maximum number of token requests per day exceeded"}``
  (assumption, as above).  Outcome ``daily_limit``.  Refused requests are
  counted too (they are token endpoint calls).

Chaos: failures and latency
---------------------------
* :meth:`~ExactOnlineEmulator.fail_next`, :meth:`~ExactOnlineEmulator.hang_next`,
  :meth:`~ExactOnlineEmulator.rotate_then_hang_next`,
  :meth:`~ExactOnlineEmulator.revoke_all` -- scripted failures of the next
  token requests.
* ``failure_rate`` (0..1) / :meth:`~ExactOnlineEmulator.set_failure_rate`: that
  share of token requests is answered ``failure_status`` (500) without being
  processed (outcome ``injected``, ``injected="random"``); the draw uses a
  ``random.Random(seed)`` so a seeded run fails the same requests in the same
  order.  :meth:`~ExactOnlineEmulator.fail_all_for` fails *every* token request
  for a number of real seconds (``injected="outage"``).  Order: queued
  ``fail_next`` first, then the outage, then the random draw.
* ``latency`` (seconds, token requests) and ``api_latency`` (``/api``) can be
  changed at any time (:meth:`~ExactOnlineEmulator.set_latency`); each request
  reads the current value.
* ``api_failure_rate`` / :meth:`~ExactOnlineEmulator.set_api_failure_rate`: the
  same for ``/api/v1/...`` (including ``current/Me``): answered
  ``api_failure_status`` with Exact's OData error shape before authentication,
  recorded with ``injected="random"``.

Data API
--------
* ``GET /api/v1/current/Me`` -- the consenting user, for a valid Bearer token
  (not division scoped; no rate-limit headers).
* ``GET|HEAD|POST|PUT|PATCH|DELETE /api/v1/<division>/...`` with a valid Bearer
  token and ``X-RateLimit-*`` headers (resets in epoch milliseconds); 429 with
  only the exhausted family's headers when the minutely/daily budget is spent.
  GET answers ``{"d":{"results":[...]}}`` (:meth:`set_api_results`); POST
  ``201 {"d": <the JSON body>}``; PUT, PATCH and DELETE ``204 No Content``
  without a body (second-hand: picqer's ``Connection.php`` expects 204 from
  its PUT and DELETE calls; Exact documents PUT for updates, PATCH is
  accepted here like PUT).  Request bodies may be sent
  with ``Content-Length`` or ``Transfer-Encoding: chunked``.
* 401 (``WWW-Authenticate: Bearer error="invalid_token"``) for a missing,
  unknown, expired, revoked or superseded access token (the reason is in
  :attr:`ApiRequest.detail`).
* :meth:`~ExactOnlineEmulator.set_large_response` makes ``GET
  /api/v1/<division>/<path>`` stream exactly ``size_bytes`` of valid JSON
  ``{"d":{"results":[...]}}`` in chunks, never held in memory, with
  ``Content-Length`` or ``Transfer-Encoding: chunked`` and an optional pause
  per chunk (for proxy/streaming tests).
* Each request is an :class:`ApiRequest`: method, path, query string, the
  headers that matter (Accept, Content-Type, Content-Length, ...; the
  Authorization *value* is never recorded, only whether it was there), body
  length and, up to ``api_body_record_limit`` bytes, the body itself, and the
  bytes of the answer's body that were sent.

Webhooks
--------
* ``POST /api/v1/<division>/webhooks/WebhookSubscriptions`` with JSON
  ``{"CallbackURL": ..., "Topic": ...}`` (Bearer token required) ->
  ``201 {"d": {"ID", "CallbackURL", "ClientID", "Created", "Creator",
  "CreatorFullName", "Description", "Division", "IsInstant", "Topic",
  "UserID"}}`` (fields: picqer ``WebhookSubscription.php``; CData's Exact
  Online provider documents the same columns).  ``Description`` is the app's
  name ("Description of the OAuth Client"), ``Created`` an OData date
  ``/Date(ms)/``.  Missing ``CallbackURL``/``Topic`` -> 400; a second
  subscription of the same app for the same (division, topic) -> ``500 "Data
  already exists"`` (second-hand: notes in the emeq-exact-api SDK,
  ``docs/partners/exact/webhooks.md``).  Callbacks must be https at Exact
  (pionect.nl "Using webhooks from Exact"); tests use http://127.0.0.1, so
  this is only enforced with ``require_https_callbacks=True``.  Any topic is
  accepted.
* About a second later (``webhook_validation_delay``, default 1.0) the emulator
  sends an empty POST (``Content-Length: 0``, no Content-Type) to the
  CallbackURL and stores the status on the subscription
  (``validation_status``, ``validated``).  A subscription whose validation is
  not answered 200/201 "fails" (second-hand: emeq-exact-api notes); what
  Exact then does is not public.  Assumption: it stays listed but is marked
  ``validated=False`` and gets no events.
* ``GET .../webhooks/WebhookSubscriptions`` lists the calling app's
  subscriptions in that division (subscriptions belong to the app that
  created them, picqer; division scoping is an assumption from the URL);
  ``GET ...(guid'<ID>')`` one (OData v2 ``{"d": {...}}``);
  ``DELETE .../webhooks/WebhookSubscriptions(guid'<ID>')`` -> 204, 404 when
  unknown or another app's.
* :meth:`~ExactOnlineEmulator.emit_webhook` POSTs an event to every validated
  subscription of (app, division, topic): body
  ``{"Content":{"Topic","ClientId","Division","Action","Key",
  "ExactOnlineEndpoint","EventCreatedOn"},"HashCode":"..."}``, compact JSON
  in that key order, ``Action`` title-case ("Update"/"Delete"),
  ``EventCreatedOn`` like ``2020-01-06T16:26:08.587`` and
  ``ExactOnlineEndpoint`` a full URL ending in ``(guid'<Key>')`` (all as in a
  real notification quoted in zangra-dev/ExactOnlineBundle
  ``Manager/ExactManager.php``; pionect.nl lists the first six fields).  The
  endpoint points at this emulator so a receiver can fetch the record.
  ``HashCode`` = upper-case hex HMAC-SHA256 of the raw Content text exactly as
  sent, keyed with the app's webhook secret (picqer
  ``Webhook/Authenticatable.php``); :func:`sign_webhook_content` computes it.
  Exact retries failed deliveries (second-hand, emeq-exact-api notes: 10
  times over ~34 h); the emulator delivers once and records the status.
* Callbacks are called with ``http.client`` (never a proxy from the
  environment, never following redirects: a 3xx is recorded as the status),
  timeout ``webhook_timeout``.

Records
-------
Everything a test may want to assert on is recorded thread-safely: see
:attr:`token_requests` (outcomes: ``ok``, ``too_early``, ``old_refresh_token``,
``invalid_grant``, ``expired_refresh_token``, ``bad_client``,
``invalid_request``, ``unsupported_grant_type``, ``injected``, ``dropped``,
``superseded_refresh_token``, ``blocked``, ``daily_limit``), :meth:`count`,
:attr:`refresh_leads`, :attr:`max_concurrent_refreshes_per_chain`,
:attr:`api_requests`, :attr:`webhook_subscriptions`, :attr:`webhook_calls`,
:attr:`webhook_deliveries` (plus :meth:`live_grant`, :meth:`is_blocked`,
:meth:`unblock`, :meth:`webhook_secret`, :meth:`wait_for_webhook_validations`).
:meth:`clear_records` also forgets the budget counts and the webhook records
(not blocks, grants or subscriptions).  Time can be compressed with an
injected ``clock`` or with :meth:`advance`.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import datetime as _dt
import hashlib
import hmac
import html
import http.client
import json
import random
import re
import secrets
import socket
import socketserver
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

__all__ = [
    "ExactOnlineEmulator",
    "ExactUser",
    "Grant",
    "TokenRequest",
    "ApiRequest",
    "WebhookSubscription",
    "WebhookCall",
    "WebhookDelivery",
    "sign_webhook_content",
    "AUTH_PATH",
    "TOKEN_PATH",
    "ME_PATH",
]

AUTH_PATH = "/api/oauth2/auth"
TOKEN_PATH = "/api/oauth2/token"
ME_PATH = "/api/v1/current/Me"

# Exact counts these answers as errors against its hourly error budget (see the module docstring).
ERROR_BUDGET_STATUSES = frozenset({400, 401, 403, 404})
# Request headers an ApiRequest keeps (never Authorization's value: only whether it was sent).
RECORDED_API_HEADERS = (
    "Accept",
    "Accept-Encoding",
    "Content-Type",
    "Content-Length",
    "Transfer-Encoding",
    "Prefer",
    "User-Agent",
)
# ExactOnlineEndpoint of an event: the REST resource of the topic (SalesOrders as in a real
# notification; the others are the resources of Exact's REST API; unknown topics: <topic>/<Topic>).
_TOPIC_PATHS = {
    "Accounts": "crm/Accounts",
    "BankAccounts": "crm/BankAccounts",
    "Contacts": "crm/Contacts",
    "Documents": "documents/Documents",
    "GoodsDeliveries": "salesorder/GoodsDeliveries",
    "Items": "logistics/Items",
    "PurchaseOrders": "purchaseorder/PurchaseOrders",
    "Quotations": "crm/Quotations",
    "SalesInvoices": "salesinvoice/SalesInvoices",
    "SalesOrders": "salesorder/SalesOrders",
}
_SUBSCRIPTIONS = re.compile(r"webhooks/webhooksubscriptions(?:\(guid'([^']*)'\))?", re.IGNORECASE)

_USER_NAMESPACE = uuid.UUID("6f1c1f3e-2d0a-4c55-9a0e-0e1e5c0ffee0")


def _opaque(stamp: str) -> str:
    """An Exact-looking opaque credential that contains a ``!``."""
    return f"{stamp}.{secrets.token_urlsafe(18)}!{secrets.token_urlsafe(27)}"


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _odata_date(ts: float) -> str:
    return f"/Date({int(ts * 1000)})/"


def _event_time(ts: float) -> str:
    """``EventCreatedOn`` as in a real notification: ``2020-01-06T16:26:08.587`` (UTC here)."""
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def _odata_error(message: str) -> dict[str, Any]:
    """Exact's REST error shape."""
    return {"error": {"code": "", "message": {"lang": "", "value": message}}}


def sign_webhook_content(content_text: str | bytes, secret: str | bytes) -> str:
    """Exact's ``HashCode``: upper-case hex HMAC-SHA256 of the raw ``Content`` JSON text,
    keyed with the app's webhook secret."""
    if isinstance(content_text, str):
        content_text = content_text.encode("utf-8")
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    return hmac.new(secret, content_text, hashlib.sha256).hexdigest().upper()


_LARGE_HEAD = b'{"d":{"results":['
_LARGE_TAIL = b"]}}"
_LARGE_ITEM = 1023  # bytes of one generated result, without the separating comma


def _large_json_chunks(size: int, chunk_size: int) -> Iterator[bytes]:
    """Exactly ``size`` bytes of valid JSON ``{"d":{"results":[...]}}``, generated chunk by chunk.

    Results are ``{"ID":"<10 digits>","Data":"xxx…"}`` of ``_LARGE_ITEM`` bytes; what is left
    over is whitespace before the closing ``]``."""
    budget = size - len(_LARGE_HEAD) - len(_LARGE_TAIL)
    if budget < 0:
        raise ValueError(f"size_bytes must be at least {len(_LARGE_HEAD) + len(_LARGE_TAIL)}")
    count = 0 if budget < _LARGE_ITEM else 1 + (budget - _LARGE_ITEM) // (_LARGE_ITEM + 1)
    padding = budget - (count * (_LARGE_ITEM + 1) - 1 if count else 0)
    filler = b"x" * (_LARGE_ITEM - len(b'{"ID":"0000000000","Data":""}'))
    buf = bytearray(_LARGE_HEAD)
    for i in range(count):
        if i:
            buf += b","
        buf += b'{"ID":"%010d","Data":"%s"}' % (i, filler)
        if len(buf) >= chunk_size:
            yield bytes(buf)
            buf.clear()
    while padding > 0:
        n = min(padding, max(chunk_size - len(buf), 1))
        buf += b" " * n
        padding -= n
        if len(buf) >= chunk_size:
            yield bytes(buf)
            buf.clear()
    buf += _LARGE_TAIL
    yield bytes(buf)


def _append_query(url: str, params: list[tuple[str, str]]) -> str:
    parts = urlsplit(url)
    extra = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


# --------------------------------------------------------------------------- data


@dataclass
class ExactUser:
    """A user as ``/api/v1/current/Me`` describes it."""

    username: str
    user_id: str
    full_name: str
    email: str
    current_division: int
    divisions: list[int]
    customer_name: str
    language_code: str = "nl-NL"

    def me(self) -> dict[str, Any]:
        return {
            "__metadata": {
                "uri": f"https://start.exactonline.nl/api/v1/current/Me(guid'{self.user_id}')",
                "type": "Exact.Web.Api.System.Me",
            },
            "UserID": self.user_id,
            "CurrentDivision": self.current_division,
            "UserName": self.username,
            "FullName": self.full_name,
            "Email": self.email,
            "DivisionCustomerName": self.customer_name,
            "LanguageCode": self.language_code,
            "Language": self.language_code.split("-")[0].upper(),
        }


@dataclass
class _Code:
    code: str
    client_id: str
    redirect_uri: str
    user: ExactUser
    division: int
    issued_at: float
    expires_at: float
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    used: bool = False


@dataclass
class Grant:
    """One refresh-token chain (one consent of one user to one client)."""

    id: int
    client_id: str
    user: ExactUser
    division: int
    created_at: float
    access_token: str = ""
    access_expires_at: float = 0.0
    refresh_token: str = ""
    refresh_expires_at: float = 0.0
    refresh_count: int = 0
    revoked: bool = False
    superseded_by: int | None = None  # id of the newer grant of the same (client, user)
    superseded_at: float | None = None

    @property
    def live(self) -> bool:
        return not self.revoked and self.superseded_by is None


@dataclass
class TokenRequest:
    """One request to ``POST /api/oauth2/token`` as the emulator saw it.

    ``outcome`` is one of: ``ok``, ``too_early``, ``old_refresh_token``,
    ``invalid_grant``, ``expired_refresh_token``, ``bad_client``,
    ``invalid_request``, ``unsupported_grant_type``, ``injected`` (a
    :meth:`ExactOnlineEmulator.fail_next`, outage or random-failure answer),
    ``dropped`` (a ``hang_next(..., then="drop")`` request that got no answer at
    all), ``superseded_refresh_token`` (a refresh token of a grant replaced by a
    newer grant of the same user), ``blocked`` (error budget spent) and
    ``daily_limit`` (daily token budget spent).
    """

    time: float  # emulator clock when the request was received
    grant_type: str | None
    outcome: str
    status: int
    client_id: str | None = None
    grant_id: int | None = None
    username: str | None = None
    lead: float | None = None  # refreshes: seconds left on the old access token
    detail: str | None = None
    injected: str | None = None  # "fail", "outage", "random", "hang", "rotate_then_hang" (comma-joined)
    started: float = 0.0  # time.monotonic() at receipt
    finished: float = 0.0  # time.monotonic() when the answer was ready

    def __getitem__(self, key: str) -> Any:  # allow record["outcome"] too
        return getattr(self, key)


@dataclass
class ApiRequest:
    """One request to ``/api/v1/...`` as the emulator saw it (``path`` of Me is :data:`ME_PATH`)."""

    time: float
    method: str
    path: str
    division: str | None
    status: int
    grant_id: int | None = None
    query: str = ""  # raw query string, undecoded
    headers: dict[str, str] = field(default_factory=dict)  # RECORDED_API_HEADERS that were sent
    authorization: bool = False  # an Authorization header was sent (its value is not kept)
    body_length: int = 0
    body: bytes | None = None  # the request body when at most api_body_record_limit bytes
    client_id: str | None = None  # the app of the Bearer token
    detail: str | None = None  # 401: missing, not_bearer, unknown, expired, revoked, superseded
    injected: str | None = None  # "random" for an api_failure_rate answer
    response_bytes: int | None = None  # bytes of the answer's body actually written

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


@dataclass
class WebhookSubscription:
    """A webhook subscription (``webhooks/WebhookSubscriptions``)."""

    id: str
    client_id: str
    division: int
    topic: str
    callback_url: str
    user_id: str
    username: str
    full_name: str
    description: str
    created: float
    is_instant: bool = False
    validation_status: int | None = None  # status the validation POST got (None: none yet / no answer)
    validation_error: str | None = None  # why the validation POST got no answer
    validated: bool | None = None  # None until the validation POST has been answered or failed
    validated_at: float | None = None

    def as_json(self, base_url: str) -> dict[str, Any]:
        return {
            "__metadata": {
                "uri": f"{base_url}/api/v1/{self.division}/webhooks/WebhookSubscriptions(guid'{self.id}')",
            },
            "ID": self.id,
            "CallbackURL": self.callback_url,
            "ClientID": self.client_id,
            "Created": _odata_date(self.created),
            "Creator": self.user_id,
            "CreatorFullName": self.full_name,
            "Description": self.description,
            "Division": self.division,
            "IsInstant": self.is_instant,
            "Topic": self.topic,
            "UserID": self.user_id,
        }

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


@dataclass
class WebhookCall:
    """One REST call to ``webhooks/WebhookSubscriptions`` (create, list, get, delete)."""

    time: float
    method: str
    division: str
    client_id: str | None
    status: int
    id: str | None = None
    topic: str | None = None
    callback_url: str | None = None
    detail: str | None = None

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


@dataclass
class WebhookDelivery:
    """One POST the emulator made to a callback: ``kind`` "validation" (empty body) or "event"."""

    time: float
    kind: str
    subscription_id: str
    url: str
    status: int | None  # None: no HTTP answer (connection refused, timeout, ...)
    body: bytes = b""
    error: str | None = None
    topic: str | None = None

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


@dataclass
class _LargeResponse:
    size: int
    chunk_size: int
    transfer: str  # "length" | "chunked"
    chunk_delay: float


@dataclass
class _Hang:
    seconds: float
    then: str  # "process" | "drop"


@dataclass
class _Fail:
    status: int
    retry_after: float | None
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def server_bind(self) -> None:
        # http.server writes a response's headers and body in two send() calls; with Nagle's
        # algorithm the body then waits for the client's delayed ACK (~40 ms) on a kept-alive
        # connection.  Accepted sockets inherit TCP_NODELAY from the listening one (Linux).
        with contextlib.suppress(OSError):
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # HTTPServer.server_bind() does a reverse DNS lookup (getfqdn); skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = host
        self.server_port = port


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ExactOnlineEmulator/1.0"
    sys_version = ""
    timeout = 30  # idle keep-alive connections are closed after this
    emulator: ExactOnlineEmulator

    # -- plumbing ---------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.emulator._track_connection(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.emulator._track_connection(self.connection, False)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked_body()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked_body(self) -> bytes:
        parts = []
        while True:
            line = self.rfile.readline(65537)
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailer fields
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF after the chunk

    def _send(
        self,
        status: int,
        body: bytes | str | dict | list,
        content_type: str = "application/json; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> int:
        """Answer; returns the number of body bytes written."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode("utf-8")
        try:
            self.send_response(status)
            if status == 204:  # no body, so neither Content-Type nor Content-Length (RFC 9110)
                body = b""
            else:
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD" and body:
                self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError):
            self.close_connection = True
            return 0
        return len(body) if self.command != "HEAD" else 0

    def _stream(
        self,
        status: int,
        chunks: Iterable[bytes],
        *,
        length: int | None,
        headers: dict[str, str],
        delay: float = 0.0,
        content_type: str = "application/json; charset=utf-8",
    ) -> int:
        """Answer with a body written chunk by chunk: ``Content-Length: length`` or, when
        ``length`` is None, ``Transfer-Encoding: chunked``.  Returns the body bytes written
        (fewer than promised when the client went away)."""
        sent = 0
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            if length is None:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(length))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command == "HEAD":
                self.wfile.flush()
                return 0
            for chunk in chunks:
                self.wfile.write(b"%X\r\n%s\r\n" % (len(chunk), chunk) if length is None else chunk)
                sent += len(chunk)
                if delay:
                    time.sleep(delay)
            if length is None:
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError):
            self.close_connection = True
        return sent

    def _drop(self) -> None:
        """Close the connection without answering."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _html(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, body, "text/html; charset=utf-8", headers)

    # -- routing ------------------------------------------------------------
    def do_GET(self) -> None:
        self._route("GET")

    def do_HEAD(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_PATCH(self) -> None:
        self._route("PATCH")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def _route(self, method: str) -> None:
        em = self.emulator
        parts = urlsplit(self.path)
        path = parts.path
        try:
            if path == AUTH_PATH:
                if method == "GET":
                    return em._auth_get(self, parts.query)
                if method == "POST":
                    return em._auth_post(self)
            elif path == TOKEN_PATH:
                if method == "POST":
                    return em._token(self)
                self._read_body()
                return self._send(405, {"error": "invalid_request", "error_description": "POST only"})
            elif path.lower() == ME_PATH.lower():
                return em._me(self, method, parts.query)
            elif path.startswith("/api/v1/"):
                return em._api(self, method, path, parts.query)
            self._read_body()
            self._send(404, {"error": {"code": "", "message": {"lang": "", "value": "Not found"}}})
        except Exception as exc:  # pragma: no cover - keep the server alive
            self._send(500, {"error": "server_error", "error_description": repr(exc)})


# --------------------------------------------------------------------------- emulator


class ExactOnlineEmulator:
    """A thread-backed live HTTP server that behaves like Exact Online (OAuth, data API, webhooks)."""

    def __init__(
        self,
        *,
        access_token_lifetime: int = 600,
        refresh_window: float = 30,
        refresh_token_lifetime: float = 30 * 24 * 3600,
        code_lifetime: float = 180,
        latency: float = 0.0,
        clients: dict[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        host: str = "127.0.0.1",
        port: int = 0,
        default_user: str = "jan@example.nl",
        default_division: int = 123456,
        revoke_old_access_tokens: bool = False,
        minutely_limit: int = 60,
        daily_limit: int = 5000,
        stamp: str = "stampNL001",
        # chaos
        failure_rate: float = 0.0,
        failure_status: int = 500,
        api_failure_rate: float = 0.0,
        api_failure_status: int = 500,
        api_latency: float = 0.0,
        seed: int | None = None,
        # Exact's token budgets
        enforce_error_budget: bool = False,
        error_budget: int = 10,
        error_block_seconds: float = 3600,
        error_budget_statuses: Iterable[int] = ERROR_BUDGET_STATUSES,
        enforce_daily_token_limit: bool = False,
        daily_token_limit: int = 200,
        # one refresh-token chain per (app, user)
        single_grant_per_user: bool = True,
        # data API and webhooks
        api_body_record_limit: int = 65536,
        webhook_validation_delay: float = 1.0,
        webhook_timeout: float = 5.0,
        webhook_ssl_context: ssl.SSLContext | None = None,
        require_https_callbacks: bool = False,
    ) -> None:
        self.access_token_lifetime = int(access_token_lifetime)
        self.refresh_window = refresh_window
        self.refresh_token_lifetime = refresh_token_lifetime
        self.code_lifetime = code_lifetime
        self.latency = latency  # read on every token request: may be changed at any time
        self.api_latency = api_latency
        self._check_rate(failure_rate)
        self._check_rate(api_failure_rate)
        self.failure_rate = failure_rate
        self.failure_status = failure_status
        self.api_failure_rate = api_failure_rate
        self.api_failure_status = api_failure_status
        self.seed = seed
        self._rng = random.Random(seed)
        self._outage_until = 0.0  # time.monotonic() until which every token request fails
        self._outage_status = 503
        self.enforce_error_budget = enforce_error_budget
        self.error_budget = error_budget
        self.error_block_seconds = error_block_seconds
        self.error_budget_statuses = frozenset(error_budget_statuses)
        self.enforce_daily_token_limit = enforce_daily_token_limit
        self.daily_token_limit = daily_token_limit
        self.single_grant_per_user = single_grant_per_user
        self.api_body_record_limit = api_body_record_limit
        self.webhook_validation_delay = webhook_validation_delay
        self.webhook_timeout = webhook_timeout
        self.webhook_ssl_context = webhook_ssl_context
        self.require_https_callbacks = require_https_callbacks
        self.host = host
        self.port = port
        self.default_user = default_user
        self.default_division = default_division
        self.revoke_old_access_tokens = revoke_old_access_tokens
        self.minutely_limit = minutely_limit
        self.daily_limit = daily_limit
        self.stamp = stamp
        self._clock = clock
        self._offset = 0.0

        self._lock = threading.RLock()
        self._clients: dict[str, str] = {}
        self._client_meta: dict[str, dict[str, Any]] = {}
        for cid, secret in (clients or {}).items():
            self.add_client(cid, secret)
        self._users: dict[str, ExactUser] = {}
        self._codes: dict[str, _Code] = {}
        self._grants: dict[int, Grant] = {}
        self._grant_seq = 0
        self._refresh_tokens: dict[str, int] = {}  # current refresh token -> grant id
        self._old_refresh_tokens: dict[str, int] = {}  # rotated-away refresh token -> grant id
        self._access_tokens: dict[str, tuple[int, float]] = {}  # token -> (grant id, expires at)
        self._live_grants: dict[tuple[str, str], int] = {}  # (client id, username) -> newest grant id
        self._supersessions: list[tuple[int, int, float]] = []  # (old grant id, new grant id, time)

        self._records: list[TokenRequest] = []
        self._api_records: list[ApiRequest] = []
        self._refresh_leads: list[float] = []
        self._outcomes: collections.Counter[str] = collections.Counter()
        self._inflight: dict[Any, int] = {}
        self._max_inflight: dict[Any, int] = {}
        self._overlaps = 0
        # budgets, per (client id, username): token requests per UTC day, error times, blocks
        self._token_day_counts: collections.Counter[tuple[Any, int]] = collections.Counter()
        self._token_error_times: dict[tuple[Any, Any], list[float]] = {}
        self._blocked_until: dict[tuple[Any, Any], float] = {}

        self._fail_queue: collections.deque[_Fail] = collections.deque()
        self._hang_queue: collections.deque[_Hang] = collections.deque()
        self._rotate_hang_queue: collections.deque[float] = collections.deque()

        self._api_results: dict[str, list[Any]] = {}
        self._large_responses: dict[str, _LargeResponse] = {}
        self._rate: dict[tuple[str, str], list[Any]] = {}

        self._webhook_subscriptions: dict[str, WebhookSubscription] = {}
        self._webhook_calls: list[WebhookCall] = []
        self._webhook_deliveries: list[WebhookDelivery] = []
        self._timers: set[threading.Timer] = set()

        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> ExactOnlineEmulator:
        if self._server is not None:
            return self
        handler = type("ExactOnlineHandler", (_Handler,), {"emulator": self})
        self._server = _Server((self.host, self.port), handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"exact-online-emulator:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            conns = list(self._connections)
            self._connections.clear()
            timers = list(self._timers)
            self._timers.clear()
        for timer in timers:
            timer.cancel()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ExactOnlineEmulator:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("ExactOnlineEmulator is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def authorization_url(self) -> str:
        return self.base_url + AUTH_PATH

    @property
    def token_url(self) -> str:
        return self.base_url + TOKEN_PATH

    @property
    def me_url(self) -> str:
        return self.base_url + ME_PATH

    def _track_connection(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    # ------------------------------------------------------------------ time
    def now(self) -> float:
        """The emulator's notion of "now" (``clock() + advance()`` offset)."""
        return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock forward (tokens/codes age accordingly)."""
        with self._lock:
            self._offset += seconds

    # ------------------------------------------------------------------ setup
    def add_client(
        self,
        client_id: str,
        secret: str,
        *,
        name: str | None = None,
        redirect_uris: Iterable[str] | None = None,
        webhook_secret: str | None = None,
    ) -> None:
        """Register an app.  ``redirect_uris`` (optional) are then enforced.  Exact gives
        every app a webhook secret; without ``webhook_secret`` a random one is made
        (read it with :meth:`webhook_secret`)."""
        with self._lock:
            self._clients[client_id] = secret
            self._client_meta[client_id] = {
                "name": name or f"App {client_id}",
                "redirect_uris": list(redirect_uris) if redirect_uris else None,
                "webhook_secret": webhook_secret or secrets.token_urlsafe(24),
            }

    def webhook_secret(self, client_id: str) -> str:
        """The app's webhook secret (the key of ``HashCode``)."""
        with self._lock:
            return self._client_meta[client_id]["webhook_secret"]

    def add_user(
        self,
        username: str,
        *,
        full_name: str | None = None,
        email: str | None = None,
        divisions: Iterable[int] | None = None,
        current_division: int | None = None,
        customer_name: str | None = None,
        language_code: str = "nl-NL",
        user_id: str | None = None,
    ) -> ExactUser:
        divs = [int(d) for d in divisions] if divisions else [self.default_division]
        local = username.split("@")[0]
        user = ExactUser(
            username=username,
            user_id=user_id or str(uuid.uuid5(_USER_NAMESPACE, username)),
            full_name=full_name or local.replace(".", " ").title(),
            email=email or (username if "@" in username else f"{username}@example.nl"),
            current_division=int(current_division) if current_division is not None else divs[0],
            divisions=divs,
            customer_name=customer_name or f"{local.title()} B.V.",
            language_code=language_code,
        )
        with self._lock:
            self._users[username] = user
        return user

    def get_user(self, user: str | ExactUser | None = None) -> ExactUser:
        """Return (creating on first use) the user called ``user``."""
        if isinstance(user, ExactUser):
            return user
        username = user or self.default_user
        with self._lock:
            existing = self._users.get(username)
        return existing or self.add_user(username)

    def set_api_results(self, path: str, results: list[Any]) -> None:
        """Results for ``GET /api/v1/<division>/<path>`` (e.g. ``crm/Accounts``)."""
        with self._lock:
            self._api_results[path.strip("/")] = list(results)

    def set_large_response(
        self,
        path: str,
        size_bytes: int | None,
        *,
        chunk_size: int = 65536,
        transfer: str = "length",
        chunk_delay: float = 0.0,
    ) -> None:
        """``GET /api/v1/<division>/<path>`` streams exactly ``size_bytes`` of valid JSON
        ``{"d":{"results":[...]}}`` in ``chunk_size`` pieces, generated on the fly.

        ``transfer="length"`` sends ``Content-Length``; ``"chunked"`` sends
        ``Transfer-Encoding: chunked``.  ``chunk_delay`` seconds pass after every chunk
        (a slow upstream).  ``size_bytes=None`` removes the path's large response."""
        key = path.strip("/")
        if size_bytes is None:
            with self._lock:
                self._large_responses.pop(key, None)
            return
        if transfer not in ("length", "chunked"):
            raise ValueError("transfer must be 'length' or 'chunked'")
        if size_bytes < len(_LARGE_HEAD) + len(_LARGE_TAIL):
            raise ValueError(f"size_bytes must be at least {len(_LARGE_HEAD) + len(_LARGE_TAIL)}")
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        with self._lock:
            self._large_responses[key] = _LargeResponse(int(size_bytes), int(chunk_size), transfer, chunk_delay)

    # ------------------------------------------------------------------ programmatic shortcuts
    def issue_code(
        self,
        client_id: str,
        redirect_uri: str,
        user: str | ExactUser | None = None,
        *,
        division: int | None = None,
        code_challenge: str | None = None,
        code_challenge_method: str | None = None,
    ) -> str:
        """Skip the consent page: return a fresh (raw, un-encoded) code."""
        if client_id not in self._clients:
            raise KeyError(f"Client with identifier '{client_id}' not found")
        u = self.get_user(user)
        return self._new_code(client_id, redirect_uri, u, division, code_challenge, code_challenge_method)

    def issue_tokens(
        self,
        client_id: str,
        user: str | ExactUser | None = None,
        *,
        division: int | None = None,
        access_expires_in: float | None = None,
    ) -> dict[str, Any]:
        """Skip the whole flow: create a grant and return a token response body.

        ``access_expires_in`` overrides the first access token's remaining life
        (handy to seed thousands of connections that are due at once).
        """
        u = self.get_user(user)
        with self._lock:
            grant = self._new_grant(client_id, u, division if division is not None else u.current_division)
            if access_expires_in is not None:
                exp = self.now() + access_expires_in
                grant.access_expires_at = exp
                self._access_tokens[grant.access_token] = (grant.id, exp)
            return self._token_body(grant)

    def _new_code(self, client_id, redirect_uri, user, division, challenge, method) -> str:
        now = self.now()
        code = _opaque(self.stamp)
        with self._lock:
            self._codes[code] = _Code(
                code=code,
                client_id=client_id,
                redirect_uri=redirect_uri,
                user=user,
                division=int(division) if division is not None else user.current_division,
                issued_at=now,
                expires_at=now + self.code_lifetime,
                code_challenge=challenge or None,
                code_challenge_method=(method or "plain") if challenge else None,
            )
        return code

    def _new_grant(self, client_id: str, user: ExactUser, division: int) -> Grant:
        with self._lock:
            self._grant_seq += 1
            now = self.now()
            grant = Grant(id=self._grant_seq, client_id=client_id, user=user, division=division, created_at=now)
            self._grants[grant.id] = grant
            self._issue_pair(grant)
            key = (client_id, user.username)
            if self.single_grant_per_user:
                previous = self._grants.get(self._live_grants.get(key, -1))
                if previous is not None and previous.live:
                    previous.superseded_by, previous.superseded_at = grant.id, now
                    self._supersessions.append((previous.id, grant.id, now))
            self._live_grants[key] = grant.id
            return grant

    def _issue_pair(self, grant: Grant) -> None:
        now = self.now()
        if self.revoke_old_access_tokens and grant.access_token:
            self._access_tokens.pop(grant.access_token, None)
        grant.access_token = _opaque(self.stamp)
        grant.access_expires_at = now + self.access_token_lifetime
        grant.refresh_token = _opaque(self.stamp)
        grant.refresh_expires_at = now + self.refresh_token_lifetime
        self._access_tokens[grant.access_token] = (grant.id, grant.access_expires_at)
        self._refresh_tokens[grant.refresh_token] = grant.id

    def _token_body(self, grant: Grant) -> dict[str, Any]:
        return {
            "access_token": grant.access_token,
            "token_type": "bearer",
            "expires_in": str(self.access_token_lifetime),
            "refresh_token": grant.refresh_token,
        }

    # ------------------------------------------------------------------ failure injection
    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        retry_after: float | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """The next ``n`` token requests answer ``status`` without being processed."""
        with self._lock:
            for _ in range(n):
                self._fail_queue.append(_Fail(status, retry_after, body, dict(headers or {})))

    def hang_next(self, n: int = 1, seconds: float = 5.0, *, then: str = "process") -> None:
        """The next ``n`` token requests sleep ``seconds`` before being processed.

        ``then="process"`` (default): afterwards the request is processed and
        answered normally (possibly to a client that already gave up).
        ``then="drop"``: afterwards the connection is closed without any answer
        and nothing is processed (the provider never saw it).
        """
        if then not in ("process", "drop"):
            raise ValueError("then must be 'process' or 'drop'")
        with self._lock:
            for _ in range(n):
                self._hang_queue.append(_Hang(seconds, then))

    def rotate_then_hang_next(self, n: int = 1, seconds: float = 5.0) -> None:
        """The next ``n`` processed token requests take effect immediately (tokens
        rotate) but the answer is held back ``seconds`` -- "the provider rotated
        but the client never got the answer" when the client times out first."""
        with self._lock:
            for _ in range(n):
                self._rotate_hang_queue.append(seconds)

    def clear_failures(self) -> None:
        """Forget every scripted failure, the outage and both failure rates."""
        with self._lock:
            self._fail_queue.clear()
            self._hang_queue.clear()
            self._rotate_hang_queue.clear()
            self._outage_until = 0.0
            self.failure_rate = 0.0
            self.api_failure_rate = 0.0

    @staticmethod
    def _check_rate(rate: float) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("a failure rate is between 0 and 1")

    def set_failure_rate(self, rate: float, status: int = 500, *, seed: int | None = None) -> None:
        """From now on ``rate`` (0..1) of the token requests are answered ``status`` without
        being processed (outcome ``injected``, ``injected="random"``); 1.0 fails them all.
        ``seed`` restarts the random draws."""
        self._check_rate(rate)
        with self._lock:
            self.failure_rate, self.failure_status = rate, status
            if seed is not None:
                self.seed, self._rng = seed, random.Random(seed)

    def set_api_failure_rate(self, rate: float, status: int = 500) -> None:
        """The same for ``/api/v1/...`` requests (data API and Me)."""
        self._check_rate(rate)
        with self._lock:
            self.api_failure_rate, self.api_failure_status = rate, status

    def fail_all_for(self, seconds: float, status: int = 503) -> None:
        """Every token request in the next ``seconds`` of real time (``time.monotonic``, not
        the emulator clock) is answered ``status`` without being processed
        (``injected="outage"``): Exact down.  ``fail_all_for(0)`` ends it."""
        with self._lock:
            self._outage_until = time.monotonic() + seconds if seconds > 0 else 0.0
            self._outage_status = status

    def set_latency(self, seconds: float, *, api: float | None = None) -> None:
        """Delay every token request by ``seconds`` from now on (and ``/api`` requests by
        ``api`` when given)."""
        self.latency = seconds
        if api is not None:
            self.api_latency = api

    def revoke_all(self) -> None:
        """Every existing grant is revoked: its refresh tokens (current and old)
        answer ``invalid_grant`` and its access tokens stop working."""
        with self._lock:
            for grant in self._grants.values():
                grant.revoked = True

    def unblock(self, client_id: str | None = None, username: Any = ...) -> None:
        """Lift error-budget blocks (all, or those of a client / client and user)."""
        with self._lock:
            for key in list(self._blocked_until):
                if (client_id is None or key[0] == client_id) and (username is ... or key[1] == username):
                    del self._blocked_until[key]

    def revoke(self, token: str) -> None:
        """Revoke the grant that owns ``token`` (access or refresh, current or old)."""
        with self._lock:
            gid = self._grant_id_for(token)
            if gid is None:
                raise KeyError("unknown token")
            self._grants[gid].revoked = True

    def expire_access_token(self, token_or_grant: str | int) -> None:
        """Make a grant's current access token expire now (refresh becomes allowed)."""
        with self._lock:
            gid = token_or_grant if isinstance(token_or_grant, int) else self._grant_id_for(token_or_grant)
            grant = self._grants[gid]
            grant.access_expires_at = self.now()
            self._access_tokens[grant.access_token] = (grant.id, grant.access_expires_at)

    # ------------------------------------------------------------------ inspection
    @property
    def token_requests(self) -> list[TokenRequest]:
        with self._lock:
            return list(self._records)

    @property
    def api_requests(self) -> list[ApiRequest]:
        with self._lock:
            return list(self._api_records)

    def count(self, outcome: str | None = None, grant_type: str | None = None) -> int:
        """Number of token requests with that outcome (and grant type)."""
        with self._lock:
            if grant_type is None:
                return sum(self._outcomes.values()) if outcome is None else self._outcomes[outcome]
            return sum(
                1 for r in self._records if r.grant_type == grant_type and (outcome is None or r.outcome == outcome)
            )

    @property
    def outcomes(self) -> dict[str, int]:
        with self._lock:
            return dict(self._outcomes)

    @property
    def refresh_leads(self) -> list[float]:
        """For every successful refresh: seconds the old access token still had
        left (negative = refreshed after it expired)."""
        with self._lock:
            return list(self._refresh_leads)

    @property
    def max_concurrent_refreshes_per_chain(self) -> int:
        """Highest number of token requests for one grant (refresh-token chain)
        that were being processed at the same moment; 1 means never overlapped.
        The window is receipt..answer, including ``latency`` but excluding
        time injected by ``hang_next``/``rotate_then_hang_next``."""
        with self._lock:
            return max((v for k, v in self._max_inflight.items() if isinstance(k, int)), default=0)

    @property
    def max_concurrent_token_requests_per_key(self) -> dict[Any, int]:
        """Same as above per key: grant id (int), ``("code", code)`` or ``("rt", token)``."""
        with self._lock:
            return dict(self._max_inflight)

    @property
    def overlapping_refreshes(self) -> int:
        """How many token requests started while another one for the same grant
        was still being processed."""
        with self._lock:
            return self._overlaps

    @property
    def grants(self) -> list[Grant]:
        with self._lock:
            return list(self._grants.values())

    # -- one grant per (client, user)
    @property
    def superseded_refresh_token_requests(self) -> list[TokenRequest]:
        """Token requests that used a refresh token of a superseded grant (outcome
        ``superseded_refresh_token``): empty means the emulator never saw one."""
        with self._lock:
            return [r for r in self._records if r.outcome == "superseded_refresh_token"]

    @property
    def supersessions(self) -> list[tuple[int, int, float]]:
        """``(old grant id, new grant id, emulator time)`` for every superseded grant."""
        with self._lock:
            return list(self._supersessions)

    def live_grant(self, client_id: str, username: str) -> Grant | None:
        """The newest grant of (client, user) if it is neither revoked nor superseded."""
        with self._lock:
            grant = self._grants.get(self._live_grants.get((client_id, username), -1))
            return grant if grant is not None and grant.live else None

    # -- Exact's budgets: errors per hour and token requests per day, per (client, user)
    @property
    def token_error_requests(self) -> list[TokenRequest]:
        """Token requests answered with a status in ``error_budget_statuses``."""
        with self._lock:
            return [r for r in self._records if r.status in self.error_budget_statuses]

    def errors_in_last_hour(self, client_id: str | None, username: str | None) -> int:
        """Errors of (client, user) in the last 3600 s of emulator time."""
        now = self.now()
        with self._lock:
            times = self._token_error_times.get((client_id, username), [])
            return sum(1 for t in times if now - 3600 < t <= now)

    def max_errors_in_any_hour(self, client_id: str | None = None, username: Any = None) -> int:
        """The most errors one (client, user) had within any 3600 s (sliding window);
        ``None`` means any client / any user (the maximum is still per pair)."""
        with self._lock:
            series = [
                sorted(times)
                for (cid, user), times in self._token_error_times.items()
                if (client_id is None or cid == client_id) and (username is None or user == username)
            ]
        best = 0
        for times in series:
            start = 0
            for end, t in enumerate(times):
                while t - times[start] >= 3600:
                    start += 1
                best = max(best, end - start + 1)
        return best

    def token_requests_today(self, client_id: str | None, username: str | None) -> int:
        """Token requests of (client, user) on the emulator's current UTC day."""
        day = int(self.now() // 86400)
        with self._lock:
            return self._token_day_counts[((client_id, username), day)]

    def max_token_requests_in_any_day(self, client_id: str | None = None, username: Any = None) -> int:
        """The most token requests one (client, user) made on one UTC day; ``None`` = any."""
        with self._lock:
            return max(
                (
                    n
                    for ((cid, user), _day), n in self._token_day_counts.items()
                    if (client_id is None or cid == client_id) and (username is None or user == username)
                ),
                default=0,
            )

    def is_blocked(self, client_id: str | None, username: str | None) -> bool:
        """Whether (client, user) is blocked by the error budget right now."""
        with self._lock:
            return self.now() < self._blocked_until.get((client_id, username), float("-inf"))

    # -- webhooks
    @property
    def webhook_subscriptions(self) -> list[WebhookSubscription]:
        """Live (not deleted) subscriptions of every app."""
        with self._lock:
            return list(self._webhook_subscriptions.values())

    @property
    def webhook_calls(self) -> list[WebhookCall]:
        with self._lock:
            return list(self._webhook_calls)

    @property
    def webhook_deliveries(self) -> list[WebhookDelivery]:
        with self._lock:
            return list(self._webhook_deliveries)

    def wait_for_webhook_validations(self, timeout: float = 5.0) -> bool:
        """Wait until every live subscription's validation POST has been answered (or
        failed); False when some are still pending after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                pending = any(sub.validated is None for sub in self._webhook_subscriptions.values())
            if not pending:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)

    def grant_for(self, token: str) -> Grant | None:
        """The grant that owns an access/refresh token (current or old)."""
        with self._lock:
            gid = self._grant_id_for(token)
            return self._grants.get(gid) if gid is not None else None

    def is_access_token_valid(self, token: str) -> bool:
        with self._lock:
            return self._valid_access(token) is not None

    def clear_records(self) -> None:
        with self._lock:
            self._records.clear()
            self._api_records.clear()
            self._refresh_leads.clear()
            self._outcomes.clear()
            self._max_inflight = {k: v for k, v in self._inflight.items() if v}
            self._overlaps = 0
            self._token_day_counts.clear()
            self._token_error_times.clear()
            self._webhook_calls.clear()
            self._webhook_deliveries.clear()

    def _grant_id_for(self, token: str) -> int | None:
        if token in self._refresh_tokens:
            return self._refresh_tokens[token]
        if token in self._old_refresh_tokens:
            return self._old_refresh_tokens[token]
        if token in self._access_tokens:
            return self._access_tokens[token][0]
        return None

    def _valid_access(self, token: str) -> Grant | None:
        return self._access_check(token)[0]

    def _access_check(self, token: str) -> tuple[Grant | None, str | None]:
        """(grant, None) for a valid access token, else (None, why)."""
        entry = self._access_tokens.get(token)
        if entry is None:
            return None, "unknown"
        gid, expires_at = entry
        grant = self._grants[gid]
        if grant.revoked:
            return None, "revoked"
        if grant.superseded_by is not None:
            return None, "superseded"
        if self.now() >= expires_at:
            return None, "expired"
        return grant, None

    # ------------------------------------------------------------------ /api/oauth2/auth
    def _auth_error_page(self, h: _Handler, message: str) -> None:
        h._html(
            400,
            "<!doctype html><html><head><meta charset='utf-8'><title>Exact Online - Error</title></head>"
            f"<body><h1>Error</h1><p id='error'>{html.escape(message, quote=False)}</p></body></html>",
        )

    def _validate_auth_params(self, h: _Handler, params: dict[str, str]) -> bool:
        cid = params.get("client_id", "")
        with self._lock:
            known = cid in self._clients
            meta = self._client_meta.get(cid) or {}
        if not known:
            self._auth_error_page(h, f"Client with identifier '{cid}' not found")
            return False
        redirect_uri = params.get("redirect_uri", "")
        if not redirect_uri:
            self._auth_error_page(h, "The redirect_uri parameter is missing")
            return False
        allowed = meta.get("redirect_uris")
        if allowed is not None and redirect_uri not in allowed:
            self._auth_error_page(h, f"The redirect_uri '{redirect_uri}' is not registered for this client")
            return False
        if params.get("response_type") != "code":
            self._auth_error_page(h, "Unsupported response_type; only 'code' is supported")
            return False
        return True

    def _auth_get(self, h: _Handler, query: str) -> None:
        params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        if not self._validate_auth_params(h, params):
            return
        user = self.get_user(params.get("user") or None)
        name = self._client_meta[params["client_id"]]["name"]
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(params[k])}">'
            for k in (
                "client_id",
                "redirect_uri",
                "response_type",
                "state",
                "code_challenge",
                "code_challenge_method",
                "force_login",
            )
            if k in params
        )
        options = "".join(
            f'<option value="{d}"{" selected" if d == user.current_division else ""}>'
            f"{d} - {html.escape(user.customer_name)}</option>"
            for d in user.divisions
        )
        page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Exact Online - Authorize {html.escape(name)}</title></head>
<body>
<h1>Exact Online</h1>
<p id="prompt">The app <strong>{html.escape(name)}</strong> wants access to your Exact Online data.</p>
<form id="consent" method="post" action="{AUTH_PATH}">
{hidden}
<p><label for="username">User</label>
<input id="username" name="username" value="{html.escape(user.username)}"></p>
<p><label for="division">Division</label>
<select id="division" name="division">{options}</select></p>
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>
</body></html>"""
        h._html(200, page, {"Cache-Control": "no-store"})

    def _auth_post(self, h: _Handler) -> None:
        raw = h._read_body().decode("utf-8", "replace")
        params = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        if not self._validate_auth_params(h, params):
            return
        redirect_uri = params["redirect_uri"]
        state = params.get("state")
        decision = params.get("decision", "")
        if decision != "allow":
            out = [("error", "access_denied")]
            if state is not None:
                out.append(("state", state))
            return h._send(302, b"", "text/html", {"Location": _append_query(redirect_uri, out)})
        user = self.get_user(params.get("username") or None)
        division = user.current_division
        if params.get("division"):
            try:
                division = int(params["division"])
            except ValueError:
                return self._auth_error_page(h, "Invalid division")
            with self._lock:
                if division not in user.divisions:
                    user.divisions.append(division)
                user.current_division = division
        code = self._new_code(
            params["client_id"],
            redirect_uri,
            user,
            division,
            params.get("code_challenge"),
            params.get("code_challenge_method"),
        )
        out = [("code", code)]
        if state is not None:
            out.append(("state", state))
        h._send(302, b"", "text/html", {"Location": _append_query(redirect_uri, out)})

    # ------------------------------------------------------------------ /api/oauth2/token
    def _token(self, h: _Handler) -> None:
        started = time.monotonic()
        received = self.now()
        raw = h._read_body()
        ctype = (h.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        form: dict[str, str] = {}
        if ctype == "application/x-www-form-urlencoded":
            form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True).items()}
        grant_type = form.get("grant_type")
        record = TokenRequest(
            time=received, grant_type=grant_type, outcome="", status=0, client_id=form.get("client_id"), started=started
        )
        injected: list[str] = []

        with self._lock:
            hang = self._hang_queue.popleft() if self._hang_queue else None
        if hang is not None:
            injected.append("hang")
            time.sleep(hang.seconds)
            if hang.then == "drop":
                record.outcome, record.status, record.injected = "dropped", 0, "hang"
                record.finished = time.monotonic()
                self._record(record)
                return h._drop()

        key, record.username, record.grant_id = self._identify(grant_type, form)
        self._enter(key)
        rotate_hang = None
        try:
            latency = self.latency
            if latency:
                time.sleep(latency)
            with self._lock:
                fail, kind = self._injected_failure()
                if fail is not None:
                    injected.append(kind)
                    status, body, headers = self._fail_answer(fail)
                    record.outcome = "injected"
                else:
                    gate = self._budget_gate(record)
                    if gate is not None:
                        status, body, headers = gate
                    else:
                        status, body, headers = self._process_token(form, h.headers, record)
                        status, body, headers = self._spend_error_budget(record, status, body, headers)
                        if record.outcome not in ("blocked", "daily_limit"):
                            rotate_hang = self._rotate_hang_queue.popleft() if self._rotate_hang_queue else None
                if rotate_hang is not None:
                    injected.append("rotate_then_hang")
        finally:
            self._leave(key)
        record.status = status
        record.injected = ",".join(injected) or None
        record.finished = time.monotonic()
        self._record(record)
        if rotate_hang is not None:
            time.sleep(rotate_hang)
        headers.setdefault("Cache-Control", "no-store")
        headers.setdefault("Pragma", "no-cache")
        if isinstance(body, (bytes, str)):
            h._send(status, body, "text/plain; charset=utf-8", headers)
        else:
            h._send(status, body, headers=headers)

    def _identify(self, grant_type: str | None, form: dict[str, str]) -> tuple[Any, str | None, int | None]:
        """(chain key, username, grant id) of a token request, as far as the emulator can tell
        before processing it.  The chain key is the grant id for refresh tokens it knows."""
        with self._lock:
            if grant_type == "refresh_token":
                rt = form.get("refresh_token", "")
                gid = self._refresh_tokens.get(rt)
                if gid is None:
                    gid = self._old_refresh_tokens.get(rt)
                if gid is None:
                    return ("rt", rt), None, None
                return gid, self._grants[gid].user.username, gid
            if grant_type == "authorization_code":
                code = self._codes.get(form.get("code", ""))
                return ("code", form.get("code", "")), code.user.username if code else None, None
            return ("other", None), None, None

    def _injected_failure(self) -> tuple[_Fail | None, str]:
        """Under self._lock: the scripted, outage or random failure this request gets, if any."""
        if self._fail_queue:
            return self._fail_queue.popleft(), "fail"
        if self._outage_until and time.monotonic() < self._outage_until:
            return _Fail(self._outage_status, None, None), "outage"
        if self.failure_rate and self._rng.random() < self.failure_rate:
            return _Fail(self.failure_status, None, None), "random"
        return None, ""

    @staticmethod
    def _fail_answer(fail: _Fail) -> tuple[int, Any, dict[str, str]]:
        status, body, headers = fail.status, fail.body, dict(fail.headers)
        if body is None:
            body = {"error": "server_error" if status >= 500 else "temporarily_unavailable"}
            if status == 429:
                body = {"error": "too_many_requests", "error_description": "Rate limit exceeded"}
        if fail.retry_after is not None:
            headers["Retry-After"] = (
                str(int(fail.retry_after)) if float(fail.retry_after).is_integer() else str(fail.retry_after)
            )
        return status, body, headers

    def _budget_gate(self, record: TokenRequest) -> tuple[int, Any, dict[str, str]] | None:
        """Under self._lock: the answer for a blocked (client, user) or a spent daily budget."""
        key = (record.client_id, record.username)
        if self.enforce_error_budget and record.time < self._blocked_until.get(key, float("-inf")):
            record.outcome, record.detail = "blocked", "error budget spent"
            return self._blocked_answer()
        day = int(record.time // 86400)
        if self.enforce_daily_token_limit and self._token_day_counts[(key, day)] >= self.daily_token_limit:
            record.outcome = "daily_limit"
            return self._err(429, "too_many_requests", "Maximum number of token requests per day exceeded")
        return None

    def _blocked_answer(self) -> tuple[int, Any, dict[str, str]]:
        return self._err(429, "too_many_requests", "API key blocked: too many errors in the last hour")

    def _spend_error_budget(
        self, record: TokenRequest, status: int, body: Any, headers: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        """Under self._lock: with ``enforce_error_budget``, an answer that would be one error
        too many becomes the "blocked" answer and starts the block."""
        if not self.enforce_error_budget or status not in self.error_budget_statuses:
            return status, body, headers
        key = (record.client_id, record.username)
        recent = sum(1 for t in self._token_error_times.get(key, ()) if record.time - 3600 < t <= record.time)
        if recent < self.error_budget:
            return status, body, headers
        self._blocked_until[key] = record.time + self.error_block_seconds
        record.detail = f"error budget spent (would have been {record.outcome})"
        record.outcome = "blocked"
        return self._blocked_answer()

    def _enter(self, key: Any) -> None:
        with self._lock:
            n = self._inflight.get(key, 0) + 1
            self._inflight[key] = n
            if n > 1:
                self._overlaps += 1
            if n > self._max_inflight.get(key, 0):
                self._max_inflight[key] = n

    def _leave(self, key: Any) -> None:
        with self._lock:
            n = self._inflight.get(key, 1) - 1
            if n <= 0:
                self._inflight.pop(key, None)
            else:
                self._inflight[key] = n

    def _record(self, record: TokenRequest) -> None:
        with self._lock:
            self._records.append(record)
            self._outcomes[record.outcome] += 1
            if record.outcome == "ok" and record.grant_type == "refresh_token" and record.lead is not None:
                self._refresh_leads.append(record.lead)
            if record.status:  # answered (a dropped request never reached Exact's budgets)
                key = (record.client_id, record.username)
                self._token_day_counts[(key, int(record.time // 86400))] += 1
                if record.status in self.error_budget_statuses:
                    self._token_error_times.setdefault(key, []).append(record.time)

    @staticmethod
    def _err(status: int, error: str, description: str | None = None) -> tuple[int, dict, dict]:
        body = {"error": error}
        if description is not None:
            body["error_description"] = description
        return status, body, {}

    def _process_token(self, form: dict[str, str], headers: Any, record: TokenRequest) -> tuple[int, Any, dict]:
        """Runs under self._lock; fills record.outcome/grant_id/username/lead."""
        client_id = form.get("client_id")
        secret = form.get("client_secret")
        if not client_id or secret is None:
            record.outcome = "bad_client"
            basic = (headers.get("Authorization") or "").lower().startswith("basic ")
            record.detail = "basic_auth_only" if basic else "missing_client_credentials"
            return self._err(
                400,
                "invalid_client",
                "Client credentials must be sent in the request body (client_id, client_secret)",
            )
        expected = self._clients.get(client_id)
        if expected is None or not hmac.compare_digest(expected.encode(), secret.encode()):
            record.outcome = "bad_client"
            record.detail = "unknown_client" if expected is None else "wrong_secret"
            return self._err(400, "invalid_client", "Client authentication failed")

        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._grant_code(form, client_id, record)
        if grant_type == "refresh_token":
            return self._grant_refresh(form, client_id, record)
        record.outcome = "unsupported_grant_type"
        return self._err(400, "unsupported_grant_type")

    def _grant_code(self, form: dict[str, str], client_id: str, record: TokenRequest) -> tuple[int, Any, dict]:
        now = self.now()
        code = self._codes.get(form.get("code", ""))
        if code is None:
            record.outcome, record.detail = "invalid_grant", "unknown_code"
            return self._err(400, "invalid_grant")
        record.username = code.user.username
        if code.used:
            record.outcome, record.detail = "invalid_grant", "code_reused"
            return self._err(400, "invalid_grant")
        code.used = True
        if now >= code.expires_at:
            record.outcome, record.detail = "invalid_grant", "code_expired"
            return self._err(400, "invalid_grant")
        if code.client_id != client_id:
            record.outcome, record.detail = "invalid_grant", "client_mismatch"
            return self._err(400, "invalid_grant")
        if form.get("redirect_uri") != code.redirect_uri:
            record.outcome, record.detail = "invalid_grant", "redirect_uri_mismatch"
            return self._err(400, "invalid_grant")
        if code.code_challenge:
            verifier = form.get("code_verifier", "")
            if code.code_challenge_method == "S256":
                computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            else:
                computed = verifier
            if not verifier or not hmac.compare_digest(computed, code.code_challenge):
                record.outcome, record.detail = "invalid_grant", "pkce_mismatch"
                return self._err(400, "invalid_grant")
        grant = self._new_grant(client_id, code.user, code.division)
        record.outcome, record.grant_id = "ok", grant.id
        return 200, self._token_body(grant), {}

    def _grant_refresh(self, form: dict[str, str], client_id: str, record: TokenRequest) -> tuple[int, Any, dict]:
        now = self.now()
        rt = form.get("refresh_token")
        if not rt:
            record.outcome = "invalid_request"
            return self._err(400, "invalid_request", "refresh_token is required")
        gid = self._refresh_tokens.get(rt)
        if gid is None:
            old = self._old_refresh_tokens.get(rt)
            if old is not None and self._grants[old].superseded_by is not None and not self._grants[old].revoked:
                return self._superseded(self._grants[old], record, rotated_away=True)
            if old is not None and not self._grants[old].revoked:
                record.outcome, record.grant_id = "old_refresh_token", old
                record.username = self._grants[old].user.username
                return self._err(401, "unauthorized_client", "Old refresh token used.")
            record.outcome = "invalid_grant"
            record.detail = "revoked" if old is not None else "unknown_refresh_token"
            record.grant_id = old
            return self._err(400, "invalid_grant")
        grant = self._grants[gid]
        record.grant_id, record.username = grant.id, grant.user.username
        if grant.revoked:
            record.outcome, record.detail = "invalid_grant", "revoked"
            return self._err(400, "invalid_grant")
        if grant.superseded_by is not None:
            return self._superseded(grant, record, rotated_away=False)
        if grant.client_id != client_id:
            record.outcome, record.detail = "invalid_grant", "client_mismatch"
            return self._err(400, "invalid_grant")
        if now >= grant.refresh_expires_at:
            record.outcome = "expired_refresh_token"
            return self._err(400, "invalid_request", f"The refresh token expired at {_iso(grant.refresh_expires_at)}")
        lead = grant.access_expires_at - now
        record.lead = lead
        if lead > self.refresh_window:
            record.outcome = "too_early"
            status, body, _ = self._err(400, "access_denied", "Rate limit exceeded: access_token not expired")
            return status, body, {"Reason": "TooEarlyToRefreshTokens"}
        del self._refresh_tokens[rt]
        self._old_refresh_tokens[rt] = grant.id
        self._issue_pair(grant)
        grant.refresh_count += 1
        record.outcome = "ok"
        return 200, self._token_body(grant), {}

    def _superseded(self, grant: Grant, record: TokenRequest, *, rotated_away: bool) -> tuple[int, Any, dict]:
        record.outcome, record.grant_id, record.username = "superseded_refresh_token", grant.id, grant.user.username
        record.detail = f"superseded by grant {grant.superseded_by}" + (" (rotated-away token)" if rotated_away else "")
        return self._err(400, "invalid_grant")

    # ------------------------------------------------------------------ /api/v1/...
    def _bearer_grant(self, h: _Handler) -> Grant | None:
        return self._bearer(h)[0]

    def _bearer(self, h: _Handler) -> tuple[Grant | None, str | None]:
        auth = h.headers.get("Authorization") or ""
        if not auth:
            return None, "missing"
        if not auth.lower().startswith("bearer "):
            return None, "not_bearer"
        with self._lock:
            return self._access_check(auth[7:].strip())

    def _unauthorized(self, h: _Handler) -> int:
        return h._send(
            401,
            _odata_error("Unauthorized"),
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )

    def _api_record(
        self, h: _Handler, method: str, path: str, division: str | None, query: str, raw: bytes
    ) -> ApiRequest:
        sent = h.headers
        return ApiRequest(
            time=self.now(),
            method=h.command,  # as sent: HEAD is answered as GET but recorded as HEAD
            path=path,
            division=division,
            status=0,
            query=query,
            headers={name: sent[name] for name in RECORDED_API_HEADERS if name in sent},
            authorization="Authorization" in sent,
            body_length=len(raw),
            body=raw if len(raw) <= self.api_body_record_limit else None,
        )

    def _log_api(self, record: ApiRequest, status: int) -> None:
        record.status = status
        with self._lock:
            self._api_records.append(record)

    def _api_gate(self, h: _Handler, record: ApiRequest) -> Grant | None:
        """Latency, injected failures and the Bearer token of an ``/api`` request; answers
        (and returns None) when the request goes no further."""
        if self.api_latency:
            time.sleep(self.api_latency)
        with self._lock:
            failed = bool(self.api_failure_rate) and self._rng.random() < self.api_failure_rate
            status = self.api_failure_status
        if failed:
            record.injected = "random"
            self._log_api(record, status)
            record.response_bytes = h._send(status, _odata_error("Internal server error"))
            return None
        grant, why = self._bearer(h)
        if grant is None:
            record.detail = why
            self._log_api(record, 401)
            record.response_bytes = self._unauthorized(h)
            return None
        record.grant_id, record.client_id = grant.id, grant.client_id
        return grant

    def _me(self, h: _Handler, method: str, query: str) -> None:
        raw = h._read_body()
        record = self._api_record(h, method, ME_PATH, None, query, raw)
        grant = self._api_gate(h, record)
        if grant is None:
            return
        self._log_api(record, 200)
        record.response_bytes = h._send(200, {"d": {"results": [grant.user.me()]}})

    def _rate_headers(self, client_id: str, division: str) -> tuple[bool, dict[str, str]]:
        now = self.now()
        minute = int(now // 60)
        day = int(now // 86400)
        with self._lock:
            state = self._rate.setdefault((client_id, division), [day, 0, minute, 0])
            if state[0] != day:
                state[0], state[1] = day, 0
            if state[2] != minute:
                state[2], state[3] = minute, 0
            daily_reset = str((day + 1) * 86400 * 1000)
            minutely_reset = str((minute + 1) * 60 * 1000)
            if state[1] >= self.daily_limit:
                return False, {
                    "X-RateLimit-Limit": str(self.daily_limit),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": daily_reset,
                }
            if state[3] >= self.minutely_limit:
                return False, {
                    "X-RateLimit-Minutely-Limit": str(self.minutely_limit),
                    "X-RateLimit-Minutely-Remaining": "0",
                    "X-RateLimit-Minutely-Reset": minutely_reset,
                }
            state[1] += 1
            state[3] += 1
            return True, {
                "X-RateLimit-Limit": str(self.daily_limit),
                "X-RateLimit-Remaining": str(self.daily_limit - state[1]),
                "X-RateLimit-Reset": daily_reset,
                "X-RateLimit-Minutely-Limit": str(self.minutely_limit),
                "X-RateLimit-Minutely-Remaining": str(self.minutely_limit - state[3]),
                "X-RateLimit-Minutely-Reset": minutely_reset,
            }

    def _api(self, h: _Handler, method: str, path: str, query: str) -> None:
        raw = h._read_body()
        rest = path[len("/api/v1/") :]
        division, _, resource = rest.partition("/")
        record = self._api_record(h, method, path, division, query, raw)
        grant = self._api_gate(h, record)
        if grant is None:
            return
        if not division.isdigit():
            self._log_api(record, 404)
            record.response_bytes = h._send(404, _odata_error("Not found"))
            return
        allowed, headers = self._rate_headers(grant.client_id, division)
        if not allowed:
            self._log_api(record, 429)
            record.response_bytes = h._send(429, _odata_error("API rate limit exceeded"), headers=headers)
            return
        resource = resource.strip("/")
        webhook = _SUBSCRIPTIONS.fullmatch(resource)
        if webhook is not None:
            return self._webhook_api(h, method, record, grant, int(division), webhook.group(1), raw, headers)
        if method == "GET":
            with self._lock:
                large = self._large_responses.get(resource)
                results = None if large is not None else list(self._api_results.get(resource, []))
            self._log_api(record, 200)
            if large is not None:
                record.response_bytes = h._stream(
                    200,
                    _large_json_chunks(large.size, large.chunk_size),
                    length=large.size if large.transfer == "length" else None,
                    headers=headers,
                    delay=large.chunk_delay,
                )
                return
            record.response_bytes = h._send(200, {"d": {"results": results}}, headers=headers)
            return
        if method == "POST":
            try:
                payload = json.loads(raw or b"{}")
            except ValueError:
                payload = {}
            self._log_api(record, 201)
            record.response_bytes = h._send(201, {"d": payload}, headers=headers)
            return
        self._log_api(record, 204)  # PUT, PATCH, DELETE
        record.response_bytes = h._send(204, b"", headers=headers)

    # ------------------------------------------------------------------ webhooks
    def _webhook_api(
        self,
        h: _Handler,
        method: str,
        record: ApiRequest,
        grant: Grant,
        division: int,
        sub_id: str | None,
        raw: bytes,
        headers: dict[str, str],
    ) -> None:
        call = WebhookCall(time=record.time, method=method, division=str(division), client_id=grant.client_id, status=0)
        call.id = sub_id

        def answer(status: int, body: Any, detail: str | None = None) -> None:
            call.status, call.detail = status, detail
            with self._lock:
                self._webhook_calls.append(call)
            self._log_api(record, status)
            record.response_bytes = h._send(status, body, headers=headers)

        if method == "POST" and sub_id is None:
            try:
                payload = json.loads(raw or b"{}")
            except ValueError:
                payload = None
            if not isinstance(payload, dict):
                return answer(400, _odata_error("Invalid JSON body"), "invalid_json")
            callback, topic = payload.get("CallbackURL"), payload.get("Topic")
            call.callback_url, call.topic = callback, topic
            if not isinstance(callback, str) or not callback or not isinstance(topic, str) or not topic:
                return answer(400, _odata_error("Mandatory: CallbackURL, Topic"), "missing_fields")
            scheme = urlsplit(callback).scheme.lower()
            if scheme not in ("http", "https") or (self.require_https_callbacks and scheme != "https"):
                return answer(400, _odata_error("CallbackURL must be an https URL"), "callback_not_https")
            with self._lock:
                duplicate = any(
                    sub.client_id == grant.client_id and sub.division == division and sub.topic.lower() == topic.lower()
                    for sub in self._webhook_subscriptions.values()
                )
                if not duplicate:
                    sub = WebhookSubscription(
                        id=str(uuid.uuid4()),
                        client_id=grant.client_id,
                        division=division,
                        topic=topic,
                        callback_url=callback,
                        user_id=grant.user.user_id,
                        username=grant.user.username,
                        full_name=grant.user.full_name,
                        description=self._client_meta.get(grant.client_id, {}).get("name", ""),
                        created=self.now(),
                        is_instant=bool(payload.get("IsInstant", False)),
                    )
                    self._webhook_subscriptions[sub.id] = sub
            if duplicate:
                return answer(500, _odata_error("Data already exists"), "duplicate")
            call.id = sub.id
            self._schedule_validation(sub)
            return answer(201, {"d": sub.as_json(self.base_url)})

        with self._lock:
            sub = self._webhook_subscriptions.get((sub_id or "").lower()) if sub_id is not None else None
            if sub is not None and (sub.client_id != grant.client_id or sub.division != division):
                sub = None  # another app's (or another division's) subscription does not exist for this caller
            if sub is not None:
                call.topic, call.callback_url = sub.topic, sub.callback_url
            mine = [
                s
                for s in self._webhook_subscriptions.values()
                if s.client_id == grant.client_id and s.division == division
            ]
            if method == "DELETE" and sub is not None:
                del self._webhook_subscriptions[sub.id]
        if method == "GET" and sub_id is None:
            return answer(200, {"d": {"results": [s.as_json(self.base_url) for s in mine]}})
        if method in ("GET", "DELETE") and sub_id is not None:
            if sub is None:
                return answer(404, _odata_error("Not found"), "unknown_subscription")
            if method == "GET":
                return answer(200, {"d": sub.as_json(self.base_url)})
            return answer(204, b"")
        answer(405, _odata_error(f"Method {method} not allowed"), "method_not_allowed")

    def _schedule_validation(self, sub: WebhookSubscription) -> None:
        timer = threading.Timer(self.webhook_validation_delay, self._validate_subscription, args=(sub,))
        timer.daemon = True
        with self._lock:
            self._timers.add(timer)
        timer.start()

    def _validate_subscription(self, sub: WebhookSubscription) -> None:
        with self._lock:
            self._timers = {t for t in self._timers if t.is_alive() and t is not threading.current_thread()}
            if self._server is None or sub.id not in self._webhook_subscriptions:
                return  # stopped, or deleted before its validation
        status, error = self._post_callback(sub.callback_url, b"", None)
        with self._lock:
            sub.validation_status, sub.validation_error = status, error
            sub.validated, sub.validated_at = status in (200, 201), self.now()
            self._webhook_deliveries.append(
                WebhookDelivery(self.now(), "validation", sub.id, sub.callback_url, status, b"", error, sub.topic)
            )

    def _post_callback(self, url: str, body: bytes, content_type: str | None) -> tuple[int | None, str | None]:
        """POST ``body`` to ``url``; (status, None) or (None, why).  Never follows redirects and
        never uses a proxy from the environment."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None, f"unsupported URL {url!r}"
        try:
            if parts.scheme == "https":
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    parts.hostname, parts.port, timeout=self.webhook_timeout, context=self.webhook_ssl_context
                )
            else:
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=self.webhook_timeout)
        except ValueError as exc:  # a bad port
            return None, repr(exc)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"Content-Length": str(len(body)), "User-Agent": "ExactOnlineEmulator-Webhooks/1.0"}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            conn.request("POST", target, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            return response.status, None
        except (OSError, http.client.HTTPException) as exc:
            return None, repr(exc)
        finally:
            conn.close()

    def emit_webhook(
        self,
        client_id: str,
        topic: str,
        division: int,
        *,
        action: str = "Update",
        key: str | None = None,
        endpoint: str | None = None,
    ) -> list[tuple[str, int | None]]:
        """Send an event to every validated subscription of (app, division, topic); returns
        ``[(callback URL, status or None)]``.

        ``key`` defaults to a new GUID; ``endpoint`` (``ExactOnlineEndpoint``) defaults to
        ``<base_url>/api/v1/<division>/<topic path>(guid'<key>')`` on this emulator; a relative
        ``endpoint`` (``crm/Accounts``) gets that prefix and suffix."""
        division = int(division)
        key = key or str(uuid.uuid4())
        if endpoint is None or not endpoint.lower().startswith(("http://", "https://")):
            path = (endpoint or _TOPIC_PATHS.get(topic, f"{topic.lower()}/{topic}")).strip("/")
            endpoint = f"{self.base_url}/api/v1/{division}/{path}(guid'{key}')"
        with self._lock:
            secret = self._client_meta[client_id]["webhook_secret"]
            targets = [
                sub
                for sub in self._webhook_subscriptions.values()
                if sub.client_id == client_id
                and sub.division == division
                and sub.topic.lower() == topic.lower()
                and sub.validated
            ]
            created = self.now()
        content = {
            "Topic": topic,
            "ClientId": client_id,
            "Division": division,
            "Action": action,
            "Key": key,
            "ExactOnlineEndpoint": endpoint,
            "EventCreatedOn": _event_time(created),
        }
        text = json.dumps(content, separators=(",", ":"))
        body = f'{{"Content":{text},"HashCode":"{sign_webhook_content(text, secret)}"}}'.encode()
        results: list[tuple[str, int | None]] = []
        for sub in targets:
            status, error = self._post_callback(sub.callback_url, body, "application/json; charset=utf-8")
            with self._lock:
                self._webhook_deliveries.append(
                    WebhookDelivery(self.now(), "event", sub.id, sub.callback_url, status, body, error, topic)
                )
            results.append((sub.callback_url, status))
        return results
