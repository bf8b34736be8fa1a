"""Writes for staff roles: the ``support`` group and who is in it.

Support staff are staff users in the ``support`` group: they view every
screen of the Django admin (every workspace) and run the support actions (the
``support_*`` permissions); they add, change and delete nothing. Superusers
can do everything. The group is created by a data migration
(accounts/migrations/0003_support_group.py) and its permissions are topped up
after every ``migrate`` (``support_group_sync``), so a screen added later is
visible to support without another migration.
"""

from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Q

from audit.services import Actor, audit_record

SUPPORT_GROUP = "support"


def support_permissions() -> list[Permission]:
    """View every model with an admin screen, and every support action (``support_*``)."""
    screens = [ContentType.objects.get_for_model(model) for model in admin.site._registry]
    views = Q(content_type__in=screens, codename__startswith="view_")
    return list(Permission.objects.filter(views | Q(codename__startswith="support_")))


def support_group_sync() -> Group:
    """Create the group if missing and add the permissions it lacks (it never loses one here)."""
    group, _ = Group.objects.get_or_create(name=SUPPORT_GROUP)
    missing = set(support_permissions()) - set(group.permissions.all())
    if missing:
        group.permissions.add(*missing)
    return group


@transaction.atomic
def support_grant(*, user, actor: Actor) -> bool:
    """Make ``user`` support staff (staff, in the group); False when they already were."""
    group = support_group_sync()
    if user.is_staff and user.groups.filter(pk=group.pk).exists():
        return False
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.groups.add(group)
    audit_record(workspace=None, actor=actor, action="staff.support_granted", target=user, data={"email": user.email})
    return True


@transaction.atomic
def support_revoke(*, user, actor: Actor) -> bool:
    """Take ``user`` out of support (and the admin, unless a superuser); False when they were not in it."""
    group = support_group_sync()
    if not user.groups.filter(pk=group.pk).exists():
        return False
    user.groups.remove(group)
    if not user.is_superuser:
        user.is_staff = False
        user.save(update_fields=["is_staff"])
    audit_record(workspace=None, actor=actor, action="staff.support_revoked", target=user, data={"email": user.email})
    return True
