"""Fill ``account_division`` from ``account_details["Division"]`` for connections made before 0004.

In batches of 2,000 rows, each its own short transaction, so the refresh
engine's row locks are never held up for long; safe to interrupt and run again
(rows already filled are skipped).
"""

from django.db import migrations, transaction

BATCH = 2000


def division_of(details) -> int | None:
    value = details.get("Division") if isinstance(details, dict) else None
    try:
        return int(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def backfill(apps, schema_editor):
    Connection = apps.get_model("connections", "Connection")
    todo = Connection.objects.filter(account_division__isnull=True, account_details__has_key="Division").order_by("id")
    last_id = None
    while True:
        page = todo.filter(id__gt=last_id) if last_id else todo
        rows = list(page.values_list("id", "account_details")[:BATCH])
        if not rows:
            return
        last_id = rows[-1][0]
        filled = [
            Connection(id=connection_id, account_division=division_of(details))
            for connection_id, details in rows
            if division_of(details) is not None
        ]
        with transaction.atomic():
            Connection.objects.bulk_update(filled, ["account_division"])


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("connections", "0004_support_pause_and_division"),
    ]

    operations = [
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
    ]
