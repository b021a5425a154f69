"""Active subscribers counted by triggers (subscribers.delivery.counters.active_subscribers).

PostgreSQL: one statement-level trigger per event, counting the active rows of the statement's
transition tables; SQLite (development): row triggers, only when the status changes.
"""

from django.db import migrations, models

PG_SQL = """
CREATE OR REPLACE FUNCTION subscribers_activecount_delta() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE delta bigint := 0;
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        delta := delta + (SELECT COUNT(*) FROM new_rows WHERE status = 'active');
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        delta := delta - (SELECT COUNT(*) FROM old_rows WHERE status = 'active');
    END IF;
    IF delta <> 0 THEN
        INSERT INTO subscribers_activecount (n) VALUES (delta);
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION subscribers_activecount_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM subscribers_activecount;
    RETURN NULL;
END $$;
CREATE TRIGGER activecount_insert AFTER INSERT ON subscribers_subscriber
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION subscribers_activecount_delta();
CREATE TRIGGER activecount_update AFTER UPDATE ON subscribers_subscriber
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION subscribers_activecount_delta();
CREATE TRIGGER activecount_delete AFTER DELETE ON subscribers_subscriber
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION subscribers_activecount_delta();
CREATE TRIGGER activecount_truncate AFTER TRUNCATE ON subscribers_subscriber
    FOR EACH STATEMENT EXECUTE FUNCTION subscribers_activecount_truncate();
"""
PG_DROP = """
DROP TRIGGER IF EXISTS activecount_insert ON subscribers_subscriber;
DROP TRIGGER IF EXISTS activecount_update ON subscribers_subscriber;
DROP TRIGGER IF EXISTS activecount_delete ON subscribers_subscriber;
DROP TRIGGER IF EXISTS activecount_truncate ON subscribers_subscriber;
DROP FUNCTION IF EXISTS subscribers_activecount_delta();
DROP FUNCTION IF EXISTS subscribers_activecount_truncate();
"""
_ADD = "INSERT INTO subscribers_activecount (n) VALUES"
SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER activecount_insert AFTER INSERT ON subscribers_subscriber
        WHEN NEW.status = 'active' BEGIN {_ADD} (1); END""",
    f"""CREATE TRIGGER activecount_update AFTER UPDATE OF status ON subscribers_subscriber
        WHEN (OLD.status = 'active') <> (NEW.status = 'active')
        BEGIN {_ADD} (CASE WHEN NEW.status = 'active' THEN 1 ELSE -1 END); END""",
    f"""CREATE TRIGGER activecount_delete AFTER DELETE ON subscribers_subscriber
        WHEN OLD.status = 'active' BEGIN {_ADD} (-1); END""",
]
SQLITE_DROP = [
    f"DROP TRIGGER IF EXISTS activecount_{event}" for event in ("insert", "update", "delete")
]
BACKFILL = """INSERT INTO subscribers_activecount (n)
    SELECT COUNT(*) FROM subscribers_subscriber WHERE status = 'active'"""


def install(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(PG_SQL)
        else:
            for statement in SQLITE_TRIGGERS:
                cursor.execute(statement)
        cursor.execute(BACKFILL)


def uninstall(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(PG_DROP)
        else:
            for statement in SQLITE_DROP:
                cursor.execute(statement)
        cursor.execute("DELETE FROM subscribers_activecount")


class Migration(migrations.Migration):
    dependencies = [("subscribers", "0015_meta_codes")]

    operations = [
        migrations.CreateModel(
            name="ActiveCount",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("n", models.BigIntegerField()),
            ],
        ),
        migrations.RunPython(install, uninstall),
    ]
