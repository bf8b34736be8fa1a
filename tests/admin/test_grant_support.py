"""``manage.py grant_support EMAIL`` makes someone support staff; the ``support`` group
exists after migrating and covers every admin screen, including ones added later."""

import importlib

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command

from accounts.services import SUPPORT_GROUP, support_group_sync
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_the_support_group_exists_after_migrating_and_can_view_every_screen():
    group = Group.objects.get(name=SUPPORT_GROUP)

    codenames = set(group.permissions.values_list("content_type__app_label", "codename"))
    for model in admin.site._registry:
        assert (model._meta.app_label, f"view_{model._meta.model_name}") in codenames, model._meta.label
    assert {("connections", "support_connection"), ("workspaces", "support_invitation")} <= codenames
    assert not [c for _, c in codenames if c.startswith(("add_", "change_", "delete_"))]


def test_the_data_migration_creates_the_group_and_the_sync_completes_it():
    Group.objects.filter(name=SUPPORT_GROUP).delete()
    importlib.import_module("accounts.migrations.0003_support_group").create_group(apps, None)
    assert Group.objects.get(name=SUPPORT_GROUP).permissions.count() == 0

    support_group_sync()

    assert Group.objects.get(name=SUPPORT_GROUP).permissions.filter(codename="view_connection").exists()


def test_grant_support_makes_someone_support_staff_once(team, capsys):
    call_command("grant_support", "Bob@Example.com")
    call_command("grant_support", "bob@example.com")

    team.bob.refresh_from_db()
    assert team.bob.is_staff and not team.bob.is_superuser
    assert team.bob.has_perm("connections.support_connection") and team.bob.has_perm("connections.view_connection")
    assert not team.bob.has_perm("connections.change_connection")
    out = capsys.readouterr().out
    assert "bob@example.com is now support staff" in out and "already is support staff" in out
    [event] = AuditEvent.objects.filter(action="staff.support_granted")
    assert (event.target_id, event.actor_label, event.workspace) == (str(team.bob.pk), "system", None)


def test_grant_support_revoke_takes_it_away(team):
    call_command("grant_support", "bob@example.com")
    call_command("grant_support", "bob@example.com", "--revoke")

    team.bob.refresh_from_db()
    assert not team.bob.is_staff and not team.bob.groups.exists()
    assert AuditEvent.objects.filter(action="staff.support_revoked").count() == 1


def test_grant_support_for_an_unknown_address_says_what_to_do(db):
    with pytest.raises(CommandError, match="sign up first"):
        call_command("grant_support", "nobody@example.com")
