"""Serving access tokens to integrations: from the database when valid, refreshed on demand when due."""

import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from common.errors import ConflictError, ServiceError, UnavailableError

from .models import Connection, Status
from .refresh import ON_DEMAND_SECONDS, PAUSED_MESSAGE, Outcome, refresh_for_validity, refresh_on_demand
from .tokens import refresh_window_opens_at

# While waiting for the provider's window to open (?min_valid=), how often the row is read
# again: the beat's scheduled refresh may land first.
MIN_VALID_POLL_SECONDS = 0.5

UNUSABLE = {
    Status.PENDING: "The connection is not authorized yet: connect it first.",
    Status.NEEDS_REAUTH: "The provider refused the refresh token: the connection needs re-authorization.",
    Status.REVOKED: "The connection was disconnected: its tokens are deleted. Reconnect it to use it again.",
}


@dataclass
class AccessToken:
    access_token: str
    token_type: str
    expires_at: datetime

    def as_dict(self, now: datetime) -> dict:
        return {
            "access_token": str(self.access_token),
            "token_type": self.token_type,
            "expires_at": self.expires_at,
            "expires_in": max(int((self.expires_at - now).total_seconds()), 0),
        }


def _unusable(connection: Connection) -> ConflictError | None:
    if connection.status in UNUSABLE:
        reason = UNUSABLE[connection.status]
        if connection.last_error and connection.status == Status.NEEDS_REAUTH:
            reason = f"{reason} Last error: {connection.last_error}"
        return ConflictError(reason, code=connection.status)
    return None


def _paused(connection: Connection, now: datetime) -> ConflictError | None:
    """Paused by support: a still-valid token is served as is, an expired one is not renewed."""
    if connection.refresh_paused_at is None or _valid(connection, now):
        return None
    return ConflictError(
        f"{PAUSED_MESSAGE} The access token has expired and is not renewed until refreshing is resumed.",
        code="refresh_paused",
    )


def _valid(connection: Connection, now: datetime) -> bool:
    return (
        bool(connection.access_token)
        and connection.access_token_expires_at is not None
        and connection.access_token_expires_at > now
    )


def _wants_refresh(connection: Connection, now: datetime) -> bool:
    """Due, or failing with (almost) no token left: worth one attempt before answering."""
    if connection.refresh_due_at is not None and connection.refresh_due_at <= now:
        return True
    expires = connection.access_token_expires_at
    return connection.status == Status.REFRESH_FAILING and (
        expires is None or (expires - now).total_seconds() <= ON_DEMAND_SECONDS
    )


def connection_access_token(*, connection: Connection, min_valid: int | None = None) -> AccessToken:
    """A valid access token for this connection, refreshing first when the refresh is due.

    Concurrent callers of a due connection queue on its row lock; the first
    refreshes and the others find the new token (single flight). A failing
    connection whose token is gone gets one on-demand attempt (if the
    provider's error budget allows) before the answer is "unavailable".

    ``min_valid``: the token must stay valid at least this many more seconds
    (at most half its lifetime); see ``_valid_for``.
    """
    if min_valid:
        _check_min_valid(connection, min_valid)
    token = _current_token(connection)
    if not min_valid or _seconds_left(token.expires_at) >= min_valid:
        return token
    return _valid_for(connection, min_valid)


def _seconds_left(expires_at: datetime | None) -> float:
    return (expires_at - timezone.now()).total_seconds() if expires_at else 0.0


def _lifetime(connection: Connection) -> float:
    if connection.access_token_lifetime:
        return float(connection.access_token_lifetime)
    return connection.oauth_client.access_token_expires_in / 1000


def _check_min_valid(connection: Connection, min_valid: int) -> None:
    half = int(_lifetime(connection) // 2)
    if min_valid > half:
        raise ServiceError(
            f"min_valid can be at most half the access token's lifetime: {half} s for this connection.",
            field="min_valid",
        )


def _not_long_enough(connection: Connection, min_valid: int, retry_after: float, why: str) -> ConflictError:
    left = max(int(_seconds_left(connection.access_token_expires_at)), 0)
    return ConflictError(
        f"The access token is valid for {left} s more, less than the {min_valid} s asked for, and {why}",
        code="not_valid_long_enough",
        retry_after=max(retry_after, 1.0),
    )


def _valid_for(connection: Connection, min_valid: int) -> AccessToken:
    """A token valid for ``min_valid`` more seconds, when the current one expires sooner.

    Refreshed now when the provider's window allows it (any time for most
    providers; Exact Online: the last 30 s); else the request waits for the
    window to open, reading the row meanwhile (the beat's scheduled refresh
    may come first), then refreshes. The wait is bounded: at most until the
    window opens, and never longer than ``TOKEN_MIN_VALID_MAX_WAIT``; when
    the window opens later than that, or the refresh fails or is deferred,
    the answer is 409 ``not_valid_long_enough`` with ``retry_after``.
    """
    deadline = time.monotonic() + settings.TOKEN_MIN_VALID_MAX_WAIT
    while True:
        opens = refresh_window_opens_at(connection)
        wait = (opens - timezone.now()).total_seconds() if opens else 0.0
        if wait <= 0:
            result = refresh_for_validity(connection=connection, min_valid=min_valid)
            connection = result.connection or connection
            if error := _unusable(connection):
                raise error
            if _valid(connection, timezone.now()) and _seconds_left(connection.access_token_expires_at) >= min_valid:
                return AccessToken(
                    connection.access_token, connection.token_type or "bearer", connection.access_token_expires_at
                )
            if result.outcome != Outcome.SKIPPED:
                retry_at = result.retry_at or connection.refresh_due_at
                retry_after = (retry_at - timezone.now()).total_seconds() if retry_at else 60
                detail = result.message or connection.last_error
                raise _not_long_enough(connection, min_valid, retry_after, f"the refresh did not succeed: {detail}")
            opens = refresh_window_opens_at(connection)
            if opens is None or opens <= timezone.now() or time.monotonic() > deadline:
                raise _not_long_enough(connection, min_valid, 60, f"it cannot be refreshed now: {result.message}")
            continue  # another caller refreshed a moment ago: the window moved, look again
        if time.monotonic() + wait > deadline:
            raise _not_long_enough(
                connection, min_valid, wait, f"the provider accepts a refresh only in {int(wait) + 1} s."
            )
        time.sleep(min(wait, MIN_VALID_POLL_SECONDS))
        connection.refresh_from_db(fields=["status", "access_token", "token_type", "access_token_expires_at"])
        if error := _unusable(connection):
            raise error
        if _valid(connection, timezone.now()) and _seconds_left(connection.access_token_expires_at) >= min_valid:
            return AccessToken(
                connection.access_token, connection.token_type or "bearer", connection.access_token_expires_at
            )


def _current_token(connection: Connection) -> AccessToken:
    now = timezone.now()
    if error := _unusable(connection) or _paused(connection, now):
        raise error
    if _valid(connection, now) and (connection.refresh_paused_at or not _wants_refresh(connection, now)):
        return AccessToken(
            connection.access_token, connection.token_type or "bearer", connection.access_token_expires_at
        )
    result = refresh_on_demand(connection=connection)
    connection = result.connection or connection
    now = timezone.now()
    if error := _unusable(connection):
        raise error
    if _valid(connection, now):
        return AccessToken(
            connection.access_token, connection.token_type or "bearer", connection.access_token_expires_at
        )
    retry_at = result.retry_at or connection.refresh_due_at
    retry_after = (retry_at - now).total_seconds() if retry_at else None
    raise UnavailableError(
        f"The access token has expired and refreshing it failed: {connection.last_error or result.message} "
        "Tokenkeeper keeps retrying.",
        code="refresh_failing",
        retry_after=retry_after,
    )
