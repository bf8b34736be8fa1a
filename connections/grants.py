"""One grant per account, for providers that keep a single refresh-token chain
per (app, account): Exact Online ends the older chain when the same user
authorizes the same app again. Handled at the callback, before the older
connection finds out as an opaque "Old refresh token used" on its next refresh.

- Same workspace, and the new connection was never authorized: the new
  authorization becomes a reconnect of the existing connection (same id, the
  new tokens); the pending duplicate is deleted.
- Otherwise (another workspace, or another connection of this one being
  reconnected): the new authorization is kept and each older connection with
  a live chain goes to ``needs_reauth`` at once, with the usual e-mail; its
  dead tokens are erased, so the token endpoint never receives them.
"""

from dataclasses import dataclass

from .models import Connection, Status
from .refresh import REFRESHABLE, mark_needs_reauth
from .selectors import connections_with_account


@dataclass
class GrantTakeover:
    connection: Connection  # where the new tokens go, locked
    duplicate: Connection | None = None  # the pending connection the authorization was started from, to delete


def grant_take_over(connection: Connection, identity) -> GrantTakeover:
    """Decide where a new authorization's tokens go; supersede older chains of the same account.

    Runs inside the callback's transaction, ``connection`` locked.
    """
    provider = connection.oauth_client.provider_spec
    if identity is None or not identity.account_id or not provider.single_grant_per_account:
        return GrantTakeover(connection)
    holders = list(
        connections_with_account(
            provider=connection.oauth_client.provider,
            client_id=connection.oauth_client.client_id,
            account_id=identity.account_id,
        )
        .exclude(pk=connection.pk)
        .select_for_update(of=("self",))
        .select_related("oauth_client")
    )
    target = _existing_in_workspace(connection, holders) if connection.connected_at is None else None
    for other in holders:
        if other is not target and other.status in REFRESHABLE:
            _supersede(other, by=target or connection)
    if target is None:
        return GrantTakeover(connection)
    return GrantTakeover(target, duplicate=connection)


def _existing_in_workspace(connection: Connection, holders: list[Connection]) -> Connection | None:
    """The connection of this workspace that already holds (or held) this account's grant."""
    candidates = [c for c in holders if c.workspace_id == connection.workspace_id and c.status != Status.REVOKED]
    candidates.sort(key=lambda c: (c.status not in REFRESHABLE, c.created_at))
    return candidates[0] if candidates else None


def _supersede(other: Connection, *, by: Connection) -> None:
    name = other.oauth_client.provider_spec.name
    where = (
        f"for the connection “{by.name}” in this workspace" if by.workspace_id == other.workspace_id else "elsewhere"
    )
    message = (
        f"The same {name} account authorized this app again {where}. {name} keeps one authorization per app and "
        "account, so this connection's authorization ended. Reconnect to use it here."
    )
    other.access_token = ""
    other.refresh_token = ""
    other.access_token_expires_at = None
    other.refresh_token_expires_at = None
    mark_needs_reauth(other, message)
