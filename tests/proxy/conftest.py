"""The proxy tests' own fixture: ``budgets`` (clean rate budgets in Redis); see helpers.py."""

from tests.proxy.helpers import budgets  # noqa: F401
