"""The consent ledger stays append-only, with one exception: erasure may redact a row's note and
message id (Meta derives message ids from the phone number), and nothing else."""

from django.db import migrations

# Kept in step with channel.erasure.REDACTED (a migration must not import app code).
ERASED = "[erased]"

FORWARD = f"""
CREATE OR REPLACE FUNCTION subscribers_consent_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE'
        AND (NEW.id, NEW.subscriber_id, NEW.kind, NEW.topic_id, NEW.privacy_version,
             NEW.source, NEW.at)
            IS NOT DISTINCT FROM (OLD.id, OLD.subscriber_id, OLD.kind, OLD.topic_id,
                                  OLD.privacy_version, OLD.source, OLD.at)
        AND (NEW.note = OLD.note OR NEW.note = '{ERASED}')
        AND (NEW.wa_message_id = OLD.wa_message_id
             OR left(NEW.wa_message_id, {len(ERASED)}) = '{ERASED}')
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the consent ledger is append-only';
END;
$$ LANGUAGE plpgsql;
"""
BACKWARD = """
CREATE OR REPLACE FUNCTION subscribers_consent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the consent ledger is append-only';
END;
$$ LANGUAGE plpgsql;
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("subscribers", "0009_delivery_attempt_seq")]
    operations = [migrations.RunPython(forward, backward)]
