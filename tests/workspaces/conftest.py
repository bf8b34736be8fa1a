"""Only for the workspace tests: a fresh cache per test (their fixtures are in ``tests/fixtures/``)."""

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """allauth keeps rate limits (e.g. one confirmation e-mail per address per 3 minutes) in the cache."""
    cache.clear()
