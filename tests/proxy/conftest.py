"""The proxy tests' fixtures: ``budgets`` (clean rate budgets in Redis; see helpers.py) and ``connection``
(Alice's Exact Online connection with a division; test_rate_budget has its own, on a frozen emulator)."""

import pytest

from tests.proxy.helpers import budgets, exact_connection_with_division  # noqa: F401


@pytest.fixture
def connection(team, exact_client, exact):
    return exact_connection_with_division(exact_client, exact, owner=team.alice)
