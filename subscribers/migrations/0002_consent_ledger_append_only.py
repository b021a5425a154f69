from django.db import migrations

# On PostgreSQL the database itself refuses to change or delete ledger rows, so no code path
# (admin, shell, a bug) can rewrite what a citizen agreed to. SQLite relies on the model guard.
FORWARD = """
CREATE OR REPLACE FUNCTION subscribers_consent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the consent ledger is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER subscribers_consentevent_append_only
    BEFORE UPDATE OR DELETE ON subscribers_consentevent
    FOR EACH ROW EXECUTE FUNCTION subscribers_consent_append_only();
"""
BACKWARD = """
DROP TRIGGER IF EXISTS subscribers_consentevent_append_only ON subscribers_consentevent;
DROP FUNCTION IF EXISTS subscribers_consent_append_only();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("subscribers", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
