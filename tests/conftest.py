"""Shared fixtures: Alice administers workspace A, Bob is a member of A, and
Charlie administers workspace B (and has no access to A)."""

from types import SimpleNamespace

import pytest
from rest_framework.test import APIClient

from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory, make_api_key
from workspaces.models import Role


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
