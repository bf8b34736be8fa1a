"""Building blocks for the integrations tests: a webhook receiver that verifies
Tokenkeeper's signatures with the standardwebhooks package, Exact Online event
bodies signed as Exact signs them, and seeded connections."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from audit.services import Actor
from connections.models import Connection, Status
from connections.services import connection_create
from tests.peers.exact_online import sign_webhook_content

DIVISION = 123456


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: dict | None  # the event, when the signature checked out
    error: str | None = None
    status: int = 0


@dataclass
class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that verifies every POST with ``secret`` (set it once known).

    ``answers`` is a list of statuses to answer in turn (the last one repeats);
    ``delay`` seconds are spent before answering.
    """

    secret: str | None = None
    answers: list[int] = field(default_factory=lambda: [204])
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = receiver._take(dict(self.headers.items()), body)
                if receiver.delay:
                    time.sleep(receiver.delay)
                payload = b"nope, try again later" if status >= 300 else b""
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender went away (a worker stopped at the end of a test)

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/hooks"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def _take(self, headers: dict[str, str], body: bytes) -> int:
        verified, error = None, None
        if self.secret:
            try:
                verified = Webhook(self.secret).verify(body, headers)
            except WebhookVerificationError as exc:
                error = str(exc)
        with self._lock:
            status = self.answers[min(len(self.received), len(self.answers) - 1)]
            self.received.append(Received(headers, body, verified, error, status))
        return status

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def count(self) -> int:
        with self._lock:
            return len(self.received)


def exact_event_body(
    secret: str, *, topic: str = "Accounts", division: int = DIVISION, key: str = "", client_id: str = "exact-app"
) -> tuple[bytes, str]:
    """An Exact Online event body signed like Exact signs it; returns (body, content text)."""
    content = json.dumps(
        {
            "Topic": topic,
            "ClientId": client_id,
            "Division": division,
            "Action": "Update",
            "Key": key or "8c5b5c3c-3a1d-4e59-9b8b-5f1fd0c2d1aa",
            "ExactOnlineEndpoint": f"https://start.exactonline.nl/api/v1/{division}/crm/Accounts(guid'{key}')",
            "EventCreatedOn": "2024-06-01T10:00:00.123",
        },
        separators=(",", ":"),
    )
    return f'{{"Content":{content},"HashCode":"{sign_webhook_content(content, secret)}"}}'.encode(), content


def active_connection(client, *, name: str = "Jansen", owner, division: int = DIVISION) -> Connection:
    """A connected connection through ``client`` holding ``division`` (no tokens needed for receiving)."""
    connection = connection_create(
        workspace=client.workspace, oauth_client=client, name=name, owner=owner, actor=Actor(user=owner)
    )
    Connection.objects.filter(pk=connection.pk).update(
        status=Status.ACTIVE, account_details={"Division": division}, connected_at=timezone.now()
    )
    connection.refresh_from_db()
    return connection


def wait_for(predicate: Callable[[], object], *, timeout: float, message: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout} s waiting for {message}")
        time.sleep(0.05)


def events_url(workspace_slug: str = "acme") -> str:
    return f"/api/v1/workspaces/{workspace_slug}/events/"


def receiver_url(client) -> str:
    return f"/webhooks/exact-online/{client.id}/"
