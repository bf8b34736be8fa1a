"""The table support's text search reads (``ConnectionSearchText``), kept by triggers.

Database triggers copy a connection's name, account name and account e-mail,
lower-cased, whenever a connection is inserted, deleted, or one of those three
columns changes (``UPDATE OF … WHEN (… IS DISTINCT FROM …)``): the refresh
engine's updates never touch them, so they never fire it. On PostgreSQL the
text has a trigram index (``pg_trgm``, a trusted extension: the database
owner may create it), so ``LIKE '%jansen%'`` reads the index, not 1,000,000
rows. Existing connections are copied in (one statement; it reads, it does
not lock the connections against the engine's writes). A ``TRUNCATE`` of the
connections (never done by Tokenkeeper) would leave rows here that match no
connection: harmless, the search joins them to the connections.
"""

from django.db import migrations, models

TABLE = "connections_connectionsearchtext"

POSTGRES = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    f"""
    CREATE OR REPLACE FUNCTION connection_search_text_sync() RETURNS trigger AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            DELETE FROM {TABLE} WHERE connection_id = OLD.id;
            RETURN OLD;
        END IF;
        INSERT INTO {TABLE} (connection_id, text)
        VALUES (NEW.id, lower(concat_ws(' ', NEW.name, NEW.account_name, NEW.account_email)))
        ON CONFLICT (connection_id) DO UPDATE SET text = EXCLUDED.text;
        RETURN NEW;
    END
    $$ LANGUAGE plpgsql
    """,
    """CREATE TRIGGER connection_search_text_insert AFTER INSERT ON connections_connection
       FOR EACH ROW EXECUTE FUNCTION connection_search_text_sync()""",
    """CREATE TRIGGER connection_search_text_update AFTER UPDATE OF name, account_name, account_email
       ON connections_connection FOR EACH ROW
       WHEN (OLD.name IS DISTINCT FROM NEW.name OR OLD.account_name IS DISTINCT FROM NEW.account_name
             OR OLD.account_email IS DISTINCT FROM NEW.account_email)
       EXECUTE FUNCTION connection_search_text_sync()""",
    """CREATE TRIGGER connection_search_text_delete AFTER DELETE ON connections_connection
       FOR EACH ROW EXECUTE FUNCTION connection_search_text_sync()""",
    f"""INSERT INTO {TABLE} (connection_id, text)
        SELECT id, lower(concat_ws(' ', name, account_name, account_email)) FROM connections_connection
        ON CONFLICT (connection_id) DO NOTHING""",
    f"CREATE INDEX IF NOT EXISTS connection_search_trgm ON {TABLE} USING gin (text gin_trgm_ops)",
]

POSTGRES_UNDO = [
    "DROP TRIGGER IF EXISTS connection_search_text_insert ON connections_connection",
    "DROP TRIGGER IF EXISTS connection_search_text_update ON connections_connection",
    "DROP TRIGGER IF EXISTS connection_search_text_delete ON connections_connection",
    "DROP FUNCTION IF EXISTS connection_search_text_sync()",
]

# SQLite (development): the same triggers in its dialect, no trigram index (small databases).
SQLITE_TEXT = "lower(NEW.name || ' ' || NEW.account_name || ' ' || NEW.account_email)"
SQLITE = [
    f"""CREATE TRIGGER connection_search_text_insert AFTER INSERT ON connections_connection BEGIN
        INSERT OR REPLACE INTO {TABLE} (connection_id, text) VALUES (NEW.id, {SQLITE_TEXT}); END""",
    f"""CREATE TRIGGER connection_search_text_update AFTER UPDATE OF name, account_name, account_email
        ON connections_connection BEGIN
        INSERT OR REPLACE INTO {TABLE} (connection_id, text) VALUES (NEW.id, {SQLITE_TEXT}); END""",
    f"""CREATE TRIGGER connection_search_text_delete AFTER DELETE ON connections_connection BEGIN
        DELETE FROM {TABLE} WHERE connection_id = OLD.id; END""",
    f"""INSERT OR IGNORE INTO {TABLE} (connection_id, text)
        SELECT id, lower(name || ' ' || account_name || ' ' || account_email) FROM connections_connection""",
]

SQLITE_UNDO = [
    "DROP TRIGGER IF EXISTS connection_search_text_insert",
    "DROP TRIGGER IF EXISTS connection_search_text_update",
    "DROP TRIGGER IF EXISTS connection_search_text_delete",
]


def install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for statement in {"postgresql": POSTGRES, "sqlite": SQLITE}.get(vendor, []):
        schema_editor.execute(statement)


def uninstall(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for statement in {"postgresql": POSTGRES_UNDO, "sqlite": SQLITE_UNDO}.get(vendor, []):
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("connections", "0005_backfill_account_division"),
    ]

    operations = [
        migrations.CreateModel(
            name="ConnectionSearchText",
            fields=[
                ("connection_id", models.UUIDField(primary_key=True, serialize=False)),
                ("text", models.TextField()),
            ],
        ),
        migrations.RunPython(install, uninstall),
    ]
