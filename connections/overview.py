"""What a workspace's Overview shows, read in a bounded number of queries.

Connections by status, the ones that need attention first, the refresh
tokens that expire soonest, how refreshing went in the last 24 hours, and,
for a workspace that is not set up yet, the first-run checklist.
"""

from dataclasses import dataclass

from oauthclients.selectors import oauth_clients_by_name
from workspaces.models import Scope
from workspaces.selectors import api_keys_list, members_list

from . import selectors


@dataclass(frozen=True)
class Step:
    key: str
    done: bool


def workspace_overview(*, workspace, membership) -> dict:
    visible = selectors.connections_visible(workspace=workspace, membership=membership)
    counts = selectors.status_counts(workspace=workspace, membership=membership)
    members = list(members_list(workspace=workspace))
    return {
        "counts": counts,
        "total": sum(counts.values()),
        "attention": selectors.connections_needing_attention(workspace=workspace, membership=membership),
        "expiring": selectors.refresh_tokens_expiring(workspace=workspace, membership=membership),
        "stats": selectors.refresh_stats(workspace=workspace, membership=membership),
        "steps": first_run_steps(workspace=workspace) if membership.is_admin else [],
        "first_connection": visible.filter(connected_at__isnull=False).order_by("connected_at").first(),
        "admins": [m for m in members if m.is_admin],
        "members_count": len(members),
    }


def first_run_steps(*, workspace) -> list[Step]:
    """Register a client → connect an account → create a key with the tokens scope → fetch a token.

    "Fetched" means a key with the ``tokens`` scope has been used (keys record
    their last use); empty once every step is done.
    """
    keys = api_keys_list(workspace=workspace).filter(revoked_at__isnull=True)
    token_keys = [key for key in keys if Scope.TOKENS in key.scopes]
    steps = [
        Step("client", oauth_clients_by_name(workspace=workspace).exists()),
        Step("connection", selectors.workspace_has_connected(workspace=workspace)),
        Step("key", bool(token_keys)),
        Step("token", any(key.last_used_at for key in token_keys)),
    ]
    return [] if all(step.done for step in steps) else steps
