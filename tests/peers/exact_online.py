"""A live HTTP emulator of Exact Online's OAuth 2.0 endpoints (stdlib only).

Start it as a real server on ``127.0.0.1`` (random free port) and point the
code under test at :attr:`ExactOnlineEmulator.base_url`::

    with ExactOnlineEmulator(clients={"cid": "secret"}) as exact:
        exact.base_url            # http://127.0.0.1:54321
        code = exact.issue_code("cid", "https://tk.example/cb", user="alice")

Behaviour follows ``docs/exact-online.md`` (the provider's facts and their public sources):

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
* ``GET /api/v1/current/Me`` -- the consenting user, for a valid Bearer token.
* ``GET|POST|PUT|DELETE /api/v1/<division>/...`` -- ``{"d":{"results":[]}}``
  (or what :meth:`ExactOnlineEmulator.set_api_results` configured) with
  ``X-RateLimit-*`` headers; 429 when the minutely/daily budget is spent.

Everything a test may want to assert on is recorded thread-safely: see
:attr:`token_requests`, :meth:`count`, :attr:`refresh_leads`,
:attr:`max_concurrent_refreshes_per_chain`.  Failures can be injected with
:meth:`fail_next`, :meth:`hang_next`, :meth:`rotate_then_hang_next` and
:meth:`revoke_all`.  Time can be compressed with an injected ``clock`` or with
:meth:`advance`.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import datetime as _dt
import hashlib
import hmac
import html
import json
import secrets
import socket
import socketserver
import threading
import time
import uuid
from collections.abc import Callable, Iterable
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
    "AUTH_PATH",
    "TOKEN_PATH",
    "ME_PATH",
]

AUTH_PATH = "/api/oauth2/auth"
TOKEN_PATH = "/api/oauth2/token"
ME_PATH = "/api/v1/current/Me"

_USER_NAMESPACE = uuid.UUID("6f1c1f3e-2d0a-4c55-9a0e-0e1e5c0ffee0")


def _opaque(stamp: str) -> str:
    """An Exact-looking opaque credential that contains a ``!``."""
    return f"{stamp}.{secrets.token_urlsafe(18)}!{secrets.token_urlsafe(27)}"


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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


@dataclass
class TokenRequest:
    """One request to ``POST /api/oauth2/token`` as the emulator saw it.

    ``outcome`` is one of: ``ok``, ``too_early``, ``old_refresh_token``,
    ``invalid_grant``, ``expired_refresh_token``, ``bad_client``,
    ``invalid_request``, ``unsupported_grant_type``, ``injected`` (a
    :meth:`ExactOnlineEmulator.fail_next` answer) and ``dropped`` (a
    ``hang_next(..., then="drop")`` request that got no answer at all).
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
    injected: str | None = None  # "fail", "hang", "rotate_then_hang" (comma-joined)
    started: float = 0.0  # time.monotonic() at receipt
    finished: float = 0.0  # time.monotonic() when the answer was ready

    def __getitem__(self, key: str) -> Any:  # allow record["outcome"] too
        return getattr(self, key)


@dataclass
class ApiRequest:
    time: float
    method: str
    path: str
    division: str | None
    status: int
    grant_id: int | None = None

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


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
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(
        self,
        status: int,
        body: bytes | str | dict | list,
        content_type: str = "application/json; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError):
            self.close_connection = True

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
                self._read_body()
                return em._me(self)
            elif path.startswith("/api/v1/"):
                return em._api(self, method, path, parts.query)
            self._read_body()
            self._send(404, {"error": {"code": "", "message": {"lang": "", "value": "Not found"}}})
        except Exception as exc:  # pragma: no cover - keep the server alive
            self._send(500, {"error": "server_error", "error_description": repr(exc)})


# --------------------------------------------------------------------------- emulator


class ExactOnlineEmulator:
    """A thread-backed live HTTP server that behaves like Exact Online's OAuth."""

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
    ) -> None:
        self.access_token_lifetime = int(access_token_lifetime)
        self.refresh_window = refresh_window
        self.refresh_token_lifetime = refresh_token_lifetime
        self.code_lifetime = code_lifetime
        self.latency = latency
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

        self._records: list[TokenRequest] = []
        self._api_records: list[ApiRequest] = []
        self._refresh_leads: list[float] = []
        self._outcomes: collections.Counter[str] = collections.Counter()
        self._inflight: dict[Any, int] = {}
        self._max_inflight: dict[Any, int] = {}
        self._overlaps = 0

        self._fail_queue: collections.deque[_Fail] = collections.deque()
        self._hang_queue: collections.deque[_Hang] = collections.deque()
        self._rotate_hang_queue: collections.deque[float] = collections.deque()

        self._api_results: dict[str, list[Any]] = {}
        self._rate: dict[tuple[str, str], list[Any]] = {}

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
    ) -> None:
        """Register an app.  ``redirect_uris`` (optional) are then enforced."""
        with self._lock:
            self._clients[client_id] = secret
            self._client_meta[client_id] = {
                "name": name or f"App {client_id}",
                "redirect_uris": list(redirect_uris) if redirect_uris else None,
            }

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
            grant = Grant(id=self._grant_seq, client_id=client_id, user=user, division=division, created_at=self.now())
            self._grants[grant.id] = grant
            self._issue_pair(grant)
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
        with self._lock:
            self._fail_queue.clear()
            self._hang_queue.clear()
            self._rotate_hang_queue.clear()

    def revoke_all(self) -> None:
        """Every existing grant is revoked: its refresh tokens (current and old)
        answer ``invalid_grant`` and its access tokens stop working."""
        with self._lock:
            for grant in self._grants.values():
                grant.revoked = True

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

    def _grant_id_for(self, token: str) -> int | None:
        if token in self._refresh_tokens:
            return self._refresh_tokens[token]
        if token in self._old_refresh_tokens:
            return self._old_refresh_tokens[token]
        if token in self._access_tokens:
            return self._access_tokens[token][0]
        return None

    def _valid_access(self, token: str) -> Grant | None:
        entry = self._access_tokens.get(token)
        if entry is None:
            return None
        gid, expires_at = entry
        grant = self._grants[gid]
        if grant.revoked or self.now() >= expires_at:
            return None
        return grant

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

        key = self._chain_key(grant_type, form)
        self._enter(key)
        try:
            if self.latency:
                time.sleep(self.latency)
            with self._lock:
                fail = self._fail_queue.popleft() if self._fail_queue else None
            if fail is not None:
                injected.append("fail")
                status, body, headers = fail.status, fail.body, dict(fail.headers)
                if body is None:
                    body = {"error": "server_error" if status >= 500 else "temporarily_unavailable"}
                    if status == 429:
                        body = {"error": "too_many_requests", "error_description": "Rate limit exceeded"}
                if fail.retry_after is not None:
                    headers["Retry-After"] = (
                        str(int(fail.retry_after)) if float(fail.retry_after).is_integer() else str(fail.retry_after)
                    )
                record.outcome, record.status = "injected", status
                rotate_hang = None
            else:
                with self._lock:
                    status, body, headers = self._process_token(form, h.headers, record)
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

    def _chain_key(self, grant_type: str | None, form: dict[str, str]) -> Any:
        with self._lock:
            if grant_type == "refresh_token":
                rt = form.get("refresh_token", "")
                gid = self._refresh_tokens.get(rt)
                if gid is None:
                    gid = self._old_refresh_tokens.get(rt)
                return gid if gid is not None else ("rt", rt)
            if grant_type == "authorization_code":
                return ("code", form.get("code", ""))
            return ("other", None)

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

    # ------------------------------------------------------------------ /api/v1/...
    def _bearer_grant(self, h: _Handler) -> Grant | None:
        auth = h.headers.get("Authorization") or ""
        if not auth.lower().startswith("bearer "):
            return None
        with self._lock:
            return self._valid_access(auth[7:].strip())

    def _unauthorized(self, h: _Handler) -> None:
        h._send(
            401,
            {"error": {"code": "", "message": {"lang": "", "value": "Unauthorized"}}},
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )

    def _me(self, h: _Handler) -> None:
        grant = self._bearer_grant(h)
        with self._lock:
            self._api_records.append(
                ApiRequest(self.now(), h.command, ME_PATH, None, 200 if grant else 401, grant.id if grant else None)
            )
        if grant is None:
            return self._unauthorized(h)
        h._send(200, {"d": {"results": [grant.user.me()]}})

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
        grant = self._bearer_grant(h)

        def log(status: int) -> None:
            with self._lock:
                self._api_records.append(
                    ApiRequest(self.now(), method, path, division, status, grant.id if grant else None)
                )

        if grant is None:
            log(401)
            return self._unauthorized(h)
        if not division.isdigit():
            log(404)
            return h._send(404, {"error": {"code": "", "message": {"lang": "", "value": "Not found"}}})
        allowed, headers = self._rate_headers(grant.client_id, division)
        if not allowed:
            log(429)
            return h._send(
                429,
                {"error": {"code": "", "message": {"lang": "", "value": "API rate limit exceeded"}}},
                headers=headers,
            )
        log(200 if method == "GET" else 201 if method == "POST" else 204)
        if method == "GET":
            with self._lock:
                results = list(self._api_results.get(resource.strip("/"), []))
            return h._send(200, {"d": {"results": results}}, headers=headers)
        if method == "POST":
            try:
                payload = json.loads(raw or b"{}")
            except ValueError:
                payload = {}
            return h._send(201, {"d": payload}, headers=headers)
        h._send(204, b"", "text/plain", headers)
