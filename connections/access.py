"""Serving access tokens to integrations: from the database when valid, refreshed on demand when due."""

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from common.errors import ConflictError, UnavailableError

from .models import Connection, Status
from .refresh import ON_DEMAND_SECONDS, PAUSED_MESSAGE, refresh_on_demand

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


def connection_access_token(*, connection: Connection) -> AccessToken:
    """A valid access token for this connection, refreshing first when the refresh is due.

    Concurrent callers of a due connection queue on its row lock; the first
    refreshes and the others find the new token (single flight). A failing
    connection whose token is gone gets one on-demand attempt (if the
    provider's error budget allows) before the answer is "unavailable".
    """
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
