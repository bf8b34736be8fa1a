"""Fixtures for every test.

Here: ``team`` (Alice administers workspace A, Bob is a member of A, and
Charlie administers workspace B, with no access to A), ``dora`` (a second
admin of A), ``api`` and ``key_factory``. The rest live in the plugin modules
of ``tests/fixtures/`` registered below, each with its constants and
factories for tests to import; a folder's own ``conftest.py`` holds only what
applies to that folder alone (the browser in ``tests/e2e/``, a fresh cache in
``tests/workspaces/``). Shared assertions are in ``tests/helpers.py``.
"""

from types import SimpleNamespace

import pytest
from rest_framework.test import APIClient

from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory, make_api_key
from workspaces.models import Role

pytest_plugins = [
    "tests.fixtures.peers",  # exact, dot_server, dot, redirect_uri
    "tests.fixtures.connections",  # exact_client, dot_client, exact_connection, people
    "tests.fixtures.oauthclients",  # acme_client, globex_client, dns, strict_urls
    "tests.fixtures.workspaces",  # ids
    "tests.fixtures.staff",  # support_user, support_client
    "tests.fixtures.services",  # the postgres and worker markers: skip locally, fail in CI
    "tests.fixtures.workers",  # celery
]


@pytest.fixture(autouse=True)
def email_tasks_inline(request, monkeypatch):
    """In-process tests send a queued e-mail at once, as the ``email`` queue's worker would, so
    ``mail.outbox`` shows it. Tests marked ``worker`` use the real queue and real workers."""
    from common.tasks import send_email

    if not request.node.get_closest_marker("worker"):
        monkeypatch.setattr(send_email, "delay", lambda **kwargs: send_email.run(**kwargs))


@pytest.fixture
def team(db):
    ws_a = WorkspaceFactory(name="Acme", slug="acme")
    ws_b = WorkspaceFactory(name="Globex", slug="globex")
    alice = UserFactory(email="alice@example.com")
    bob = UserFactory(email="bob@example.com")
    charlie = UserFactory(email="charlie@example.com")
    MembershipFactory(workspace=ws_a, user=alice, role=Role.ADMIN)
    MembershipFactory(workspace=ws_a, user=bob, role=Role.MEMBER)
    MembershipFactory(workspace=ws_b, user=charlie, role=Role.ADMIN)
    return SimpleNamespace(a=ws_a, b=ws_b, alice=alice, bob=bob, charlie=charlie)


@pytest.fixture
def dora(team):
    """A second admin of Acme: needs-reauth mail goes to every admin."""
    user = UserFactory(email="dora@example.com")
    MembershipFactory(workspace=team.a, user=user, role=Role.ADMIN)
    return user


@pytest.fixture
def api():
    """An API client; use ``api.as_user(u)`` or ``api.as_key(raw)``."""
    client = APIClient()

    def as_user(user):
        client.credentials()
        client.force_authenticate(user=None)
        client.force_login(user)
        return client

    def as_key(raw):
        client.logout()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return client

    def anonymous():
        client.logout()
        client.credentials()
        return client

    client.as_user, client.as_key, client.anonymous = as_user, as_key, anonymous
    return client


@pytest.fixture
def key_factory(db):
    return make_api_key
