"""The ``support`` group: staff who view every workspace and run the support actions.

Created here empty; its permissions (view every admin screen, every
``support_*`` action) are added after each ``migrate`` by
``accounts.services.support_group_sync``, when every app's permissions exist.
"""

from django.db import migrations


def create_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.get_or_create(name="support")


def delete_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="support").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_encrypt_mfa_secrets"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(create_group, delete_group)]
