"""Building blocks for the proxy tests: an Exact Online connection with a division, proxy URLs,
API clients with keys, and a clean rate budget in Redis."""

from __future__ import annotations

import pytest
from django.conf import settings

from connections.models import Connection
from tests.refresh.helpers import connect, tokens_client

DIVISION = 123456


def exact_connection_with_division(
    client, exact, *, owner, remaining: float = 500, name="Jansen", user="jan@example.nl"
) -> Connection:
    """An active Exact Online connection of ``user`` in division ``DIVISION``, ``remaining`` seconds left."""
    connection = connect(client, exact, name=name, owner=owner, remaining=remaining, user=user)
    connection.account_division = DIVISION
    connection.account_details = {"Division": DIVISION}
    connection.save(update_fields=["account_division", "account_details"])
    return connection


def proxy_url(connection: Connection, path: str, workspace_slug: str | None = None) -> str:
    slug = workspace_slug or connection.workspace.slug
    return f"/api/v1/workspaces/{slug}/connections/{connection.id}/proxy/{path}"


def accounts(connection: Connection) -> str:
    """The proxy URL of the connection's division's CRM accounts (a call Exact's rate budget counts)."""
    return proxy_url(connection, f"{DIVISION}/crm/Accounts")


def clear_rate_budgets() -> None:
    import redis

    if not settings.RATE_BUDGET_REDIS_URL:
        return
    client = redis.Redis.from_url(settings.RATE_BUDGET_REDIS_URL)
    keys = list(client.scan_iter(f"{settings.RATE_BUDGET_KEY_PREFIX}*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def budgets():
    """Rate budgets start empty (Redis is shared by the tests' processes)."""
    clear_rate_budgets()
    yield
    clear_rate_budgets()


__all__ = ["DIVISION", "budgets", "clear_rate_budgets", "exact_connection_with_division", "proxy_url", "tokens_client"]
