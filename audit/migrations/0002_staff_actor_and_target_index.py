"""Staff actions (``by_staff``: the workspace sees "Tokenkeeper support") and an
object's audit trail by ``target_id``, indexed ``CONCURRENTLY`` on PostgreSQL
so writing audit events is not blocked while it is built."""

from django.db import migrations, models

INDEX = models.Index(fields=["target_id", "-created_at"], name="audit_target_time")


def create_index(apps, schema_editor):
    model = apps.get_model("audit", "AuditEvent")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_target_time "
            "ON workspaces_auditevent (target_id, created_at DESC)"
        )
    else:
        schema_editor.add_index(model, INDEX)


def drop_index(apps, schema_editor):
    schema_editor.remove_index(apps.get_model("audit", "AuditEvent"), INDEX)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("audit", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="by_staff",
            field=models.BooleanField(default=False),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="auditevent", index=INDEX)],
            database_operations=[migrations.RunPython(create_index, drop_index)],
        ),
    ]
