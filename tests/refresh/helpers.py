"""Building blocks for the refresh tests: the Exact Online emulator with
compressed lifetimes, connections seeded with tokens it issued, the token API,
and the e-mails a worker subprocess writes to files.

Modules marked ``compressed_exact`` get an ``exact`` emulator with 40 s access
tokens that may be refreshed only in their last 30 s, so a refresh cycle takes
seconds; ``exact_emulator()`` makes another one like it.
"""

from __future__ import annotations

import email
import email.policy
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from audit.services import Actor
from connections.models import Connection, Status
from connections.oauth import TokenSet
from connections.services import connection_create
from connections.tokens import apply_tokens
from tests.factories import make_api_key
from tests.fixtures.peers import EXACT_CLIENT_ID, exact_online
from tests.peers.exact_online import ExactOnlineEmulator

# Compressed Exact Online: 40 s access tokens, refresh accepted in the last 30 s.
LIFETIME = 40
WINDOW = 30
compressed_exact = pytest.mark.exact_online(access_token_lifetime=LIFETIME, refresh_window=WINDOW)


def exact_emulator(**options) -> ExactOnlineEmulator:
    """An emulator (not started) with compressed lifetimes and Tokenkeeper's app registered."""
    return exact_online(access_token_lifetime=LIFETIME, refresh_window=WINDOW, **options)


def connect(
    client, exact: ExactOnlineEmulator, *, name: str, owner, remaining: float, user: str | None = None
) -> Connection:
    """An active connection holding tokens the emulator issued; its access token
    has ``remaining`` seconds left (by the emulator's clock and never less by ours)."""
    connection = connection_create(
        workspace=client.workspace, oauth_client=client, name=name, owner=owner, actor=Actor(user=owner)
    )
    started = timezone.now()
    body = exact.issue_tokens(
        EXACT_CLIENT_ID, user or f"{name.lower().replace(' ', '.')}@example.nl", access_expires_in=remaining
    )
    tokens = TokenSet(
        access_token=body["access_token"],
        refresh_token=body["refresh_token"],
        token_type=body["token_type"],
        expires_in=int(body["expires_in"]),
        refresh_expires_in=None,
        scope="",
    )
    lifetime = int(body["expires_in"])
    apply_tokens(connection, tokens, issued_at=started - timedelta(seconds=lifetime - remaining))
    connection.status = Status.ACTIVE
    connection.connected_at = started
    connection.save()
    return connection


def token_url(connection: Connection) -> str:
    return f"/api/v1/workspaces/{connection.workspace.slug}/connections/{connection.id}/token"


def refresh_url(connection: Connection) -> str:
    return f"/api/v1/workspaces/{connection.workspace.slug}/connections/{connection.id}/refresh"


def tokens_client(workspace, scopes=("tokens",)) -> APIClient:
    """An API client authenticated with a fresh key of ``workspace``."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_api_key(workspace, scopes=scopes)}")
    return client


def refreshes(exact: ExactOnlineEmulator, outcome: str | None = None) -> int:
    return exact.count(outcome, grant_type="refresh_token")


def wait_until(
    predicate: Callable[[], object],
    *,
    timeout: float,
    interval: float = 0.1,
    message: str | Callable[[], str] = "condition",
) -> object:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"Timed out after {timeout} s waiting for {text}")
        time.sleep(interval)


def read_mail_files(directory: Path) -> list[email.message.EmailMessage]:
    """Messages Django's file-based e-mail backend wrote to ``directory``."""
    messages = []
    for path in sorted(directory.glob("*.log")) if directory.exists() else []:
        for chunk in path.read_bytes().split(b"\n" + b"-" * 79 + b"\n"):
            if chunk.strip():
                messages.append(email.message_from_bytes(chunk, policy=email.policy.default))
    return messages


def mail_recipients(messages, subject_contains: str) -> list[str]:
    """Every ``To`` address of the messages whose subject contains the text (sorted, duplicates kept)."""
    return sorted(str(m["To"]) for m in messages if subject_contains in str(m["Subject"]))
