"""Every Django admin is either read-only or audits each change staff make through it."""

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.test import RequestFactory

from audit.models import AuditEvent
from audit.staff import AuditedAdmin
from common import crypto

pytestmark = pytest.mark.django_db


def test_every_registered_admin_is_read_only_or_audited(admin_user):
    request = RequestFactory().get("/django-admin/")
    request.user = admin_user
    assert admin.site._registry, "no admin registered?"
    for model, model_admin in admin.site._registry.items():
        writable = [
            name
            for name, allowed in (
                ("add", model_admin.has_add_permission(request)),
                ("change", model_admin.has_change_permission(request)),
                ("delete", model_admin.has_delete_permission(request)),
            )
            if allowed
        ]
        assert not writable or isinstance(model_admin, AuditedAdmin), (
            f"{model._meta.label}: {type(model_admin).__name__} lets a superuser {', '.join(writable)} "
            "without an audit event; subclass audit.staff.AuditedAdmin or common.admin.ReadOnlyAdmin."
        )


def test_the_stock_admins_are_replaced(admin_user):
    for model in (EmailAddress, Authenticator, Group):
        assert isinstance(admin.site._registry[model], AuditedAdmin), model


def staff_events(action: str):
    return list(AuditEvent.objects.filter(action=action))


def test_changing_an_email_address_in_the_admin_is_audited(admin_client, admin_user, team):
    address = EmailAddress.objects.get(user=team.bob)
    response = admin_client.post(
        f"/django-admin/account/emailaddress/{address.pk}/change/",
        {"user": team.bob.pk, "email": "bob@evil.example", "verified": "on", "primary": "on"},
    )
    assert response.status_code == 302, response.content.decode()[-2000:]

    [event] = staff_events("staff.email_address_changed")
    assert event.actor == admin_user and event.workspace is None
    assert event.target_type == "emailaddress" and event.target_id == str(address.pk)
    assert event.data == {"fields": ["email"]}
    assert event.ip_address == "127.0.0.1"


def test_marking_addresses_verified_and_deleting_them_in_bulk_is_audited(admin_client, team):
    EmailAddress.objects.filter(user=team.bob).update(verified=False)
    address = EmailAddress.objects.get(user=team.bob)
    changelist = "/django-admin/account/emailaddress/"

    admin_client.post(changelist, {"action": "make_verified", "_selected_action": [address.pk]})
    admin_client.post(changelist, {"action": "delete_selected", "_selected_action": [address.pk], "post": "yes"})

    [verified] = staff_events("staff.email_address_changed")
    assert verified.data == {"fields": ["verified"], "action": "make_verified"}
    [deleted] = staff_events("staff.email_address_deleted")
    assert deleted.data == {"email": "bob@example.com", "user": "bob@example.com"}
    assert not EmailAddress.objects.filter(pk=address.pk).exists()


def test_removing_a_second_factor_is_audited_without_its_secret(admin_client, team):
    authenticator = Authenticator.objects.create(
        user=team.bob, type="totp", data={"secret": crypto.encrypt("JBSWY3DPEHPK3PXP")}
    )
    response = admin_client.post(f"/django-admin/mfa/authenticator/{authenticator.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302

    [event] = staff_events("staff.authenticator_deleted")
    assert event.data == {"user": "bob@example.com", "type": "totp"}
    assert "JBSWY3DP" not in repr(event.__dict__)


def test_staff_changes_to_groups_and_passwords_are_audited(admin_client, team):
    permission = Permission.objects.get(codename="view_connection")
    admin_client.post("/django-admin/auth/group/add/", {"name": "Support", "permissions": [permission.pk]})
    response = admin_client.post(
        f"/django-admin/accounts/user/{team.bob.pk}/password/",
        {"password1": "a new pass phrase 42", "password2": "a new pass phrase 42", "set_usable_password": "true"},
    )
    assert response.status_code == 302, response.content.decode()[-2000:]

    [group] = staff_events("staff.group_created")
    assert group.data == {"fields": ["name", "permissions"]} and group.target_label == "Support"
    [password] = staff_events("staff.user_changed")
    assert password.data == {"fields": ["password"]} and password.target_id == str(team.bob.pk)
    assert "a new pass phrase" not in repr(password.__dict__)
