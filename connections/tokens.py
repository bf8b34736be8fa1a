"""Storing issued tokens and deciding when the next refresh is due."""

from datetime import datetime, timedelta

from .models import Connection
from .oauth import TokenSet


def access_lifetime(connection: Connection, tokens: TokenSet) -> int:
    """Seconds: the provider's ``expires_in`` when given, else the client's configured lifetime."""
    if tokens.expires_in:
        return tokens.expires_in
    return max(connection.oauth_client.access_token_expires_in // 1000, 1)


def refresh_lifetime(connection: Connection, tokens: TokenSet) -> int | None:
    """Seconds, or None when the refresh token does not expire (configured 0)."""
    if tokens.refresh_expires_in:
        return tokens.refresh_expires_in
    configured = connection.oauth_client.refresh_token_expires_in
    return configured // 1000 if configured else None


def refresh_window_opens_at(connection: Connection) -> datetime | None:
    """The earliest moment the provider accepts a refresh of the current access
    token (Exact Online: 30 s before expiry); None when any time will do."""
    if connection.access_token_expires_at is None:
        return None
    return connection.oauth_client.provider_spec.refresh_policy.window_opens_at(connection.access_token_expires_at)


def next_refresh_due(connection: Connection) -> datetime | None:
    """When the next refresh is due; None when none is (no tokens, or refreshing is paused)."""
    if not connection.refresh_token or connection.access_token_expires_at is None or connection.refresh_paused_at:
        return None
    policy = connection.oauth_client.provider_spec.refresh_policy
    lifetime = connection.access_token_lifetime or 0
    due = policy.due_at(connection.access_token_expires_at, lifetime)
    expires = connection.refresh_token_expires_at
    if expires is not None and policy.window_seconds is None:
        # Refresh while the refresh token still works, with room for retries.
        due = min(due, expires - timedelta(minutes=10))
    return due


def apply_tokens(connection: Connection, tokens: TokenSet, *, issued_at: datetime) -> None:
    """Put freshly issued tokens on the connection (not saved).

    ``issued_at`` is when the request was sent, so our idea of the expiry is
    never later than the provider's.
    """
    lifetime = access_lifetime(connection, tokens)
    connection.access_token = tokens.access_token
    connection.token_type = tokens.token_type or "bearer"
    connection.access_token_expires_at = issued_at + timedelta(seconds=lifetime)
    connection.access_token_lifetime = lifetime
    if tokens.scope:
        connection.granted_scopes = tokens.scope
    if tokens.refresh_token and tokens.refresh_token != connection.refresh_token:
        # A rotated (or first) refresh token starts its own lifetime; a provider
        # that sends none (Authlib then repeats the old one) keeps its expiry.
        connection.refresh_token = tokens.refresh_token
        seconds = refresh_lifetime(connection, tokens)
        connection.refresh_token_expires_at = issued_at + timedelta(seconds=seconds) if seconds else None
    connection.refresh_due_at = next_refresh_due(connection)
