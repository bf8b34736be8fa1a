"""Support resends an invitation: a new single-use link (the old one stops working)
valid for a full period, e-mailed to the invitee; audited as "Tokenkeeper support"."""

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import STAFF_LABEL, Actor
from common.errors import ServiceError, UnavailableError
from tests.admin.helpers import admin_url
from tests.workspaces.helpers import expire
from workspaces.models import Invitation
from workspaces.services import invitation_create, invitation_resend, invitation_revoke

pytestmark = pytest.mark.django_db


class BrokenMailServer:
    """An e-mail backend whose server refuses every message."""

    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("SMTP server unreachable")


@pytest.fixture
def invitation(team):
    invitation, token = invitation_create(
        workspace=team.a, email="dave@example.com", role="member", actor=Actor(user=team.alice)
    )
    # Sent yesterday: resending is limited to once a minute after the last sending.
    yesterday = timezone.now() - timedelta(days=1)
    Invitation.objects.filter(pk=invitation.pk).update(created_at=yesterday)
    AuditEvent.objects.filter(target_id=str(invitation.pk)).update(created_at=yesterday)
    invitation.refresh_from_db()
    mail.outbox.clear()
    return invitation, token


def link_path(message) -> str:
    return urlsplit(re.search(r"https?://\S+/invitations/\S+/", message.body).group(0)).path


def opens(path: str) -> bool:
    """Whether the invitation page offers to accept (the link is usable)."""
    return "not valid" not in Client().get(path).content.decode()


def test_resending_mails_a_new_link_and_the_old_one_stops_working(team, invitation, support_user):
    original, old_token = invitation
    expire(original)

    resent, new_token = invitation_resend(
        workspace=team.a, invitation=original, actor=Actor(user=support_user, staff=True)
    )

    [message] = mail.outbox
    assert message.to == ["dave@example.com"]
    assert "\nalice@example.com invited you" in message.body  # who invited them, not support
    assert link_path(message) == f"/invitations/{new_token}/"
    assert resent.status == "pending" and resent.expires_at > timezone.now() + timedelta(days=6)
    assert opens(f"/invitations/{new_token}/") and not opens(f"/invitations/{old_token}/")
    event = AuditEvent.objects.get(action="invitation.resent")
    assert (event.actor, event.actor_label, event.workspace) == (support_user, STAFF_LABEL, team.a)


def test_an_accepted_or_revoked_invitation_is_not_resent(team, invitation):
    original, _ = invitation
    invitation_revoke(workspace=team.a, invitation=original, actor=Actor(user=team.alice))

    with pytest.raises(ServiceError, match="revoked"):
        invitation_resend(workspace=team.a, invitation=original, actor=Actor(user=team.alice))
    assert mail.outbox == []


def test_when_the_email_fails_nothing_changes_and_the_old_link_still_works(team, invitation, settings):
    original, old_token = invitation
    settings.EMAIL_BACKEND = f"{__name__}.BrokenMailServer"

    with pytest.raises(UnavailableError, match="could not be sent"):
        invitation_resend(workspace=team.a, invitation=original, actor=Actor(user=team.alice))

    assert Invitation.objects.get(pk=original.pk).token_hash == original.token_hash
    assert opens(f"/invitations/{old_token}/")
    assert not AuditEvent.objects.filter(action="invitation.resent").exists()


def test_support_resends_from_the_invitation_page(support_client, team, invitation):
    original, _ = invitation
    url = admin_url(Invitation, "change", original.pk)

    page = support_client.get(url)
    response = support_client.post(url.replace("/change/", "/act/resend/"), follow=True)

    assert [a["name"] for a in page.context["object_actions"]] == ["resend"]
    [message] = [str(m) for m in response.context["messages"]]
    assert message.startswith("Invitation sent again to dave@example.com")
    assert [m.to for m in mail.outbox] == [["dave@example.com"]]
    assert AuditEvent.objects.get(action="invitation.resent").actor_label == STAFF_LABEL


def test_the_resend_button_is_not_offered_for_an_accepted_invitation(support_client, team, invitation):
    original, _ = invitation
    Invitation.objects.filter(pk=original.pk).update(accepted_at=timezone.now(), accepted_by=team.bob)

    page = support_client.get(admin_url(Invitation, "change", original.pk))
    response = support_client.post(admin_url(Invitation, "change", original.pk).replace("/change/", "/act/resend/"))

    assert page.context["object_actions"] == []
    assert response.status_code == 404
