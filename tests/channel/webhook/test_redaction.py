"""Right to erasure reaches the raw archives: the webhook bodies keep no number."""

from __future__ import annotations

import json

import pytest

from channel.models import InboundEvent, InboundMessage, OutboundMessage
from channel.webhook.retention import REDACTED, redact_person
from tests.channel.webhook.helpers import envelope, post_webhook, text_item

pytestmark = pytest.mark.django_db

GONE, STAYS = "393336660001", "393336660002"


def test_it_removes_the_number_from_every_archive_and_only_that_one(
    client, redis_conn, fake_graph, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        for number in (GONE, STAYS):
            body = json.dumps(envelope(messages=[text_item(number, "Ciao")])).encode()
            assert post_webhook(client, body).status_code == 200
    OutboundMessage.objects.create(
        to_wa_id=GONE, payload={"to": GONE, "type": "text", "text": {"body": "x"}}
    )

    assert redact_person(wa_id=GONE) > 0

    assert not InboundEvent.objects.filter(body__contains=GONE).exists()
    assert InboundEvent.objects.filter(body__contains=REDACTED).count() == 1
    assert InboundEvent.objects.filter(body__contains=STAYS).count() == 1
    assert not InboundMessage.objects.filter(wa_id=GONE).exists()
    assert InboundMessage.objects.filter(wa_id=STAYS).count() == 1
    for outbound in OutboundMessage.objects.all():
        assert GONE not in json.dumps(outbound.payload)
        assert outbound.to_wa_id != GONE
    assert OutboundMessage.objects.filter(to_wa_id=STAYS).exists()
