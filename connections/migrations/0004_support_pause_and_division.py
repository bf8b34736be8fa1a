"""Support: pause refreshing, find a connection by Exact division number, the support permission.

- ``refresh_paused_at``: while set, ``refresh_due_at`` stays empty, so the
  sweeper's partial index ``connection_refresh_due`` never holds the row.
- ``account_division`` with a partial index (Exact Online connections only),
  built ``CONCURRENTLY`` on PostgreSQL so the refresh engine's writes are not
  blocked while it is built; filled for existing rows by 0005.
- Both new columns are nullable without a default: adding them rewrites nothing.
"""

from django.db import migrations, models

INDEX = models.Index(
    condition=models.Q(("account_division__isnull", False)),
    fields=["account_division"],
    name="connection_account_division",
)


def create_index(apps, schema_editor):
    model = apps.get_model("connections", "Connection")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS connection_account_division "
            "ON connections_connection (account_division) WHERE account_division IS NOT NULL"
        )
    else:
        schema_editor.add_index(model, INDEX)


def drop_index(apps, schema_editor):
    schema_editor.remove_index(apps.get_model("connections", "Connection"), INDEX)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("connections", "0003_token_calls_and_deferred_refreshes"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="connection",
            options={
                "ordering": ["name"],
                "permissions": [("support_connection", "Can run support actions on connections")],
            },
        ),
        migrations.AddField(
            model_name="connection",
            name="account_division",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="connection",
            name="refresh_paused_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="connectionevent",
            name="kind",
            field=models.CharField(
                choices=[
                    ("created", "Created"),
                    ("authorized", "Authorized"),
                    ("reconnected", "Reconnected"),
                    ("authorization_failed", "Authorization failed"),
                    ("refreshed", "Refreshed"),
                    ("refresh_failed", "Refresh failed"),
                    ("refresh_deferred", "Refresh postponed"),
                    ("needs_reauth", "Needs re-authorization"),
                    ("recovered", "Recovered"),
                    ("revoked", "Revoked"),
                    ("refresh_paused", "Refreshing paused"),
                    ("refresh_resumed", "Refreshing resumed"),
                    ("reauth_email_sent", "Re-authorization e-mail sent again"),
                ],
                max_length=30,
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="connection", index=INDEX)],
            database_operations=[migrations.RunPython(create_index, drop_index)],
        ),
    ]
