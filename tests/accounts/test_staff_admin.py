import pytest

from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser("support@example.com", "pw-for-support-1")
    client.force_login(user)
    return user


def test_a_staff_change_to_a_user_is_audited_without_secrets(client, staff, team):
    response = client.post(
        f"/django-admin/accounts/user/{team.bob.pk}/change/",
        {
            "email": "bob@example.com",
            "name": "Bob Builder",
            "is_active": "on",
            "last_login_0": "",
            "last_login_1": "",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    event = AuditEvent.objects.get(action="staff.user_changed")
    assert event.actor == staff and event.target_id == str(team.bob.pk)
    assert event.data == {"fields": ["name"]}
    assert event.ip_address == "127.0.0.1"


def test_a_staff_deletion_of_a_user_without_workspaces_is_audited(client, staff, django_user_model):
    loner = django_user_model.objects.create_user("loner@example.com", "pw-for-loner-1")
    response = client.post(f"/django-admin/accounts/user/{loner.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert AuditEvent.objects.get(action="staff.user_deleted").data == {"email": "loner@example.com"}


def test_staff_cannot_delete_a_user_who_still_belongs_to_a_workspace(client, staff, team):
    response = client.post(f"/django-admin/accounts/user/{team.charlie.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert not AuditEvent.objects.filter(action="staff.user_deleted").exists()
