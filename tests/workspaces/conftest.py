"""Objects in both workspaces for tests that address them by id."""

from types import SimpleNamespace

import pytest
from django.core.cache import cache

from audit.models import AuditEvent
from audit.services import Actor
from workspaces.models import Membership
from workspaces.services import api_key_create, invitation_create


def _objects_of(workspace, admin, invitee: str) -> SimpleNamespace:
    actor = Actor(user=admin, ip="198.51.100.1")
    invitation, token = invitation_create(workspace=workspace, email=invitee, role="member", actor=actor)
    key, _ = api_key_create(workspace=workspace, name="Nightly ETL", scopes=["read"], actor=actor)
    return SimpleNamespace(
        invitation=invitation,
        invitation_token=token,
        key=key,
        event=AuditEvent.objects.get(workspace=workspace, action="api_key.created"),
    )


@pytest.fixture
def ids(team):
    """Ids for URL templates: ``{bob}``, ``{alice}``, ``{invitation}``, ``{key}``, ``{event}`` in Acme
    and ``{g_member}``, ``{g_invitation}``, ``{g_key}``, ``{g_event}`` in Globex."""
    acme = _objects_of(team.a, team.alice, "erin@example.com")
    globex = _objects_of(team.b, team.charlie, "frank@example.com")
    return SimpleNamespace(
        acme=acme,
        globex=globex,
        url={
            "alice": Membership.objects.get(workspace=team.a, user=team.alice).id,
            "bob": Membership.objects.get(workspace=team.a, user=team.bob).id,
            "invitation": acme.invitation.id,
            "key": acme.key.id,
            "event": acme.event.id,
            "g_member": Membership.objects.get(workspace=team.b, user=team.charlie).id,
            "g_invitation": globex.invitation.id,
            "g_key": globex.key.id,
            "g_event": globex.event.id,
        },
    )


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """allauth keeps rate limits (e.g. one confirmation e-mail per address per 3 minutes) in the cache."""
    cache.clear()
