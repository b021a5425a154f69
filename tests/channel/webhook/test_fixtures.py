"""Captured-payload fixtures, one per event kind (messages, statuses, user preferences), through the
parser and through the real webhook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from channel.models import InboundEvent
from channel.webhook.parsing import parse_webhook
from tests.channel.webhook.helpers import post_webhook

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "whatsapp"
EXPECTED = {
    # name: (message kinds, statuses, preferences)
    "text": (["text"], 0, 0),
    "list_reply": (["list_reply"], 0, 0),
    "button_reply": (["button_reply"], 0, 0),
    "nfm_reply": (["nfm_reply"], 0, 0),
    "image": (["image"], 0, 0),
    "location": (["location"], 0, 0),
    "sticker": (["sticker"], 0, 0),
    "reaction": (["reaction"], 0, 0),
    "unsupported": (["unsupported"], 0, 0),
    "system": (["system"], 0, 0),
    "statuses": ([], 4, 0),
    "user_preferences": ([], 0, 1),
    "batched": (["text", "image", "reaction"], 4, 1),
}


def load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def test_there_is_a_fixture_for_every_event_kind():
    assert {p.stem for p in FIXTURES.glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_fixture_parses_completely(name):
    kinds, statuses, preferences = EXPECTED[name]
    parsed = parse_webhook(load(name))
    assert [m.kind for m in parsed.messages] == kinds
    assert (len(parsed.statuses), len(parsed.preferences)) == (statuses, preferences)
    assert parsed.problems == []


def test_fixture_details_survive_parsing():
    [flow] = parse_webhook(load("nfm_reply")).messages
    assert flow.flow_response["topics"] == ["scuola", "eventi-cultura"]  # sent as a JSON string
    [listed] = parse_webhook(load("list_reply")).messages
    assert (listed.reply_id, listed.user_id) == ("t:scuola", "IT.13491208655302741918")
    failed = parse_webhook(load("statuses")).statuses[-1]
    assert (failed.status, failed.errors[0].code, failed.biz_opaque_callback_data) == (
        "failed",
        131026,
        "d:2",
    )


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_fixture_is_accepted_by_the_webhook(client, name, django_capture_on_commit_callbacks):
    body = (FIXTURES / f"{name}.json").read_bytes()
    with django_capture_on_commit_callbacks(execute=True):
        response = post_webhook(client, body)
    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert event.body == body.decode()
    assert "error:" not in event.problems
