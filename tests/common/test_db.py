"""Health checks of persistent connections (common/db.py): skipped for a connection that ran a query a
moment ago, done as Django does for one that sat idle, and a dead idle connection is replaced."""

import contextlib

import pytest
from django.db import close_old_connections, connection

from common import db
from workspaces.models import Workspace

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def checks(monkeypatch):
    """Counts Django's health checks (``is_usable``, one ``SELECT 1`` each) on this connection."""
    calls = []
    original = connection.is_usable

    def is_usable():
        calls.append(1)
        return original()

    monkeypatch.setattr(connection, "is_usable", is_usable)
    return calls


def new_request() -> None:
    """What happens at the start of each request: Django's receiver, then ours."""
    close_old_connections()
    db.skip_recent_health_checks()


def test_a_connection_that_just_worked_is_not_checked_again(checks):
    assert connection.health_check_enabled
    Workspace.objects.count()

    new_request()
    Workspace.objects.count()

    assert checks == []


def test_a_connection_idle_for_a_while_is_checked_first(checks):
    Workspace.objects.count()
    connection.tokenkeeper_used_at -= db.RECENT_SECONDS + 0.5

    new_request()
    Workspace.objects.count()
    Workspace.objects.count()

    assert checks == [1]  # once per request, before the first query


def test_a_dead_idle_connection_is_replaced_before_the_request_uses_it():
    Workspace.objects.count()
    # The server ends this session, as after a failover or an idle timeout of a proxy.
    with contextlib.suppress(Exception), connection.connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    connection.tokenkeeper_used_at -= db.RECENT_SECONDS + 0.5

    new_request()

    assert Workspace.objects.count() == 0
