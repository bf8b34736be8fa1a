"""Leaner writes for the refresh engine (docs/benchmarks.md).

- Drop three indexes that another index already covers (status alone and its
  LIKE twin, workspace_id; connection_id on events): PostgreSQL writes every
  index of a row on each non-HOT update, i.e. on every refresh.
- An index on events' ``created_at`` for the retention purge of routine
  ``refreshed`` events (an append-only key: cheap to maintain).
- ``fillfactor = 80`` on connections (PostgreSQL only): leaves room in each
  page so the sweeper's lease update, which changes no indexed column, can be
  a HOT update (no index writes). Applies to pages written from now on.
"""

import django.db.models.deletion
from django.db import migrations, models


def set_fillfactor(apps, schema_editor, value=80):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE connections_connection SET (fillfactor = {int(value)})")


def reset_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE connections_connection RESET (fillfactor)")


class Migration(migrations.Migration):

    dependencies = [
        ('connections', '0001_initial'),
        ('workspaces', '0001_initial'),
    ]

    operations = [
        migrations.RunPython(set_fillfactor, reset_fillfactor, elidable=False),
        migrations.AlterField(
            model_name='connection',
            name='status',
            field=models.CharField(choices=[('pending', 'Pending'), ('active', 'Active'), ('refresh_failing', 'Refresh failing'), ('needs_reauth', 'Needs re-authorization'), ('revoked', 'Revoked')], default='pending', max_length=20),
        ),
        migrations.AlterField(
            model_name='connection',
            name='workspace',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='connections', to='workspaces.workspace'),
        ),
        migrations.AlterField(
            model_name='connectionevent',
            name='connection',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='events', to='connections.connection'),
        ),
        migrations.AddIndex(
            model_name='connectionevent',
            index=models.Index(fields=['created_at'], name='connection_event_created'),
        ),
    ]
