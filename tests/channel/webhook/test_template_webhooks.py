"""Meta's template webhooks (message_template_status_update, template_category_update,
message_template_quality_update) change the synced template at once: a paused template stops
being chosen, a re-categorised one is flagged, as the nightly sync would."""

from __future__ import annotations

import json

import pytest

from channel.webhook.drain import process_pending_inbound_events
from subscribers.delivery.payloads import default_template
from tests.channel.webhook.helpers import post_webhook
from tests.factories import make_template
from topics.models import AuditEntry

pytestmark = pytest.mark.django_db


def template_webhook(field: str, **value) -> bytes:
    """As Meta sends it (e.g. PYWA's tests/data/updates/template_status_update.json)."""
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "time": 1700000000,
                "changes": [{"value": value, "field": field}],
            }
        ],
    }
    return json.dumps(body).encode()


def delivered(body: bytes) -> None:
    assert post_webhook(None, body).status_code == 200
    process_pending_inbound_events()


def test_a_paused_template_stops_being_chosen_and_comes_back(redis_conn):
    template = make_template(meta_id="1234567890")
    update = "message_template_status_update"
    delivered(
        template_webhook(
            update,
            event="PAUSED",
            message_template_id=1234567890,
            message_template_name="avviso_comune",
            message_template_language="it",
            reason=None,
            other_info={"title": "FIRST_PAUSE", "description": "low quality"},
        )
    )
    template.refresh_from_db()
    assert template.status == "paused" and default_template("it") is None
    assert AuditEntry.objects.filter(action="templates_synced").exists()
    delivered(
        template_webhook(
            update,
            event="REINSTATED",
            message_template_id=1234567890,
            message_template_name="avviso_comune",
            message_template_language="it",
            reason="NONE",
        )
    )
    template.refresh_from_db()
    assert template.status == "approved" and default_template("it") == template


def test_a_rejected_template_by_name_and_language_keeps_metas_reason(redis_conn):
    template = make_template()
    delivered(
        template_webhook(
            "message_template_status_update",
            event="REJECTED",
            message_template_id=42,
            message_template_name="avviso_comune",
            message_template_language="it",
            reason="INVALID_FORMAT",
        )
    )
    template.refresh_from_db()
    assert template.status == "rejected" and template.rejected_reason == "INVALID_FORMAT"


def test_a_category_change_is_flagged_and_quality_kept(redis_conn):
    template = make_template(meta_id="77", category="utility")
    delivered(
        template_webhook(
            "template_category_update",
            message_template_id=77,
            message_template_name="avviso_comune",
            message_template_language="it",
            previous_category="UTILITY",
            new_category="MARKETING",
        )
    )
    delivered(
        template_webhook(
            "message_template_quality_update",
            message_template_id=77,
            message_template_name="avviso_comune",
            message_template_language="it",
            previous_quality_score="GREEN",
            new_quality_score="YELLOW",
        )
    )
    template.refresh_from_db()
    assert template.category == "marketing" and template.category_changed_from == "utility"
    assert template.quality_score == "yellow" and template.status == "approved"
    assert AuditEntry.objects.filter(action="template_category_changed").count() == 1


def test_an_unknown_or_empty_template_update_changes_nothing(redis_conn):
    template = make_template()
    delivered(
        template_webhook(
            "message_template_status_update",
            event="DISABLED",
            message_template_id=999,
            message_template_name="altro",
            message_template_language="it",
        )
    )
    delivered(template_webhook("message_template_status_update", event="DISABLED"))
    template.refresh_from_db()
    assert template.status == "approved"
