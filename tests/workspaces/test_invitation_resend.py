"""Resending an invitation: a new link (the old one stops working) and a new expiry, audited,
at most once a minute and five times a day, and only by the workspace's admins."""

from datetime import timedelta
from unittest import mock

import pytest
from django.conf import settings
from django.core import mail
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import Actor
from common.errors import ServiceError
from workspaces.models import Invitation
from workspaces.selectors import invitation_by_token
from workspaces.services import RESENDS_PER_DAY, invitation_resend, invitation_revoke

pytestmark = pytest.mark.django_db


def resend_url(invitation) -> str:
    return f"/w/acme/admin/invitations/{invitation.id}/resend/"


def age(invitation, minutes: float) -> None:
    """Pretend the invitation (and its audit rows) were sent ``minutes`` ago."""
    before = timezone.now() - timedelta(minutes=minutes)
    Invitation.objects.filter(pk=invitation.pk).update(
        created_at=before, expires_at=before + timedelta(days=settings.INVITATION_LIFETIME_DAYS)
    )
    AuditEvent.objects.filter(target_id=str(invitation.pk)).update(created_at=before)
    invitation.refresh_from_db()


def resend(invitation, actor_user):
    return invitation_resend(
        workspace=invitation.workspace, invitation=invitation, actor=Actor(user=actor_user, ip="198.51.100.7")
    )


def test_resend_mails_a_new_link_and_the_old_one_stops_working(team, ids):
    invitation, old_token = ids.acme.invitation, ids.acme.invitation_token
    age(invitation, 60 * 24)
    old_expiry = invitation.expires_at
    mail.outbox = []

    _, new_token = resend(invitation, team.alice)

    assert new_token != old_token
    assert invitation_by_token(token=old_token) is None
    assert invitation_by_token(token=new_token).pk == invitation.pk
    [message] = mail.outbox
    assert message.to == ["erin@example.com"] and f"/invitations/{new_token}/" in message.body
    invitation.refresh_from_db()
    assert invitation.expires_at > old_expiry + timedelta(hours=23)
    event = AuditEvent.objects.get(action="invitation.resent")
    assert (event.actor, event.ip_address, event.target_id) == (team.alice, "198.51.100.7", str(invitation.pk))
    assert new_token not in str(event.data)


def test_resend_waits_a_minute_after_the_last_sending(team, ids):
    with pytest.raises(ServiceError, match="less than a minute ago"):
        resend(ids.acme.invitation, team.alice)
    assert not AuditEvent.objects.filter(action="invitation.resent").exists()


def test_resend_stops_after_five_a_day(team, ids):
    invitation = ids.acme.invitation
    for _ in range(RESENDS_PER_DAY):
        age(invitation, 2)
        resend(invitation, team.alice)
    age(invitation, 2)
    with pytest.raises(ServiceError, match="resent 5 times in the last 24 hours"):
        resend(invitation, team.alice)


def test_a_withdrawn_invitation_is_not_resent(team, ids):
    invitation_revoke(workspace=team.a, invitation=ids.acme.invitation, actor=Actor(user=team.alice))
    age(ids.acme.invitation, 5)
    with pytest.raises(ServiceError, match="already revoked"):
        resend(ids.acme.invitation, team.alice)


def test_a_failing_mail_changes_nothing_and_the_old_link_still_works(team, ids):
    invitation, old_token = ids.acme.invitation, ids.acme.invitation_token
    age(invitation, 5)
    failing = mock.patch("workspaces.services.send_mail", side_effect=OSError("SMTP down"))
    with failing, pytest.raises(ServiceError, match="the earlier link still works"):
        resend(invitation, team.alice)
    assert invitation_by_token(token=old_token).pk == invitation.pk
    assert not AuditEvent.objects.filter(action="invitation.resent").exists()


def test_the_members_page_resends_for_admins_only(team, ids, client):
    invitation = ids.acme.invitation
    age(invitation, 5)
    client.force_login(team.bob)
    assert client.post(resend_url(invitation)).status_code == 403
    client.force_login(team.charlie)
    assert client.post(resend_url(invitation)).status_code == 404
    assert client.post(f"/w/globex/admin/invitations/{invitation.id}/resend/", follow=True).redirect_chain[-1][0] == (
        "/w/globex/admin/members/"
    )  # Globex's admin cannot reach Acme's invitation through their own workspace
    assert not AuditEvent.objects.filter(action="invitation.resent").exists()

    client.force_login(team.alice)
    response = client.post(resend_url(invitation), follow=True)
    assert "Invitation sent again to erin@example.com" in response.content.decode()
    assert AuditEvent.objects.filter(action="invitation.resent").count() == 1
