"""Signed webhooks with hostile content: set aside or cleaned, never a stopped drain.

Only Meta can sign a webhook, but what it carries comes from citizens and from Meta's own
strings, and JSON can encode what PostgreSQL cannot store: NUL ("\\u0000" is refused in text),
lone surrogates ("\\ud800" cannot be encoded in UTF-8), numbers too big for a float or an
integer column, and any type at any level. Whatever a webhook holds, the drain must mark it
processed and go on to the next ones; it must never roll back its batch on every pass. NUL
only fails on PostgreSQL: run these there (DATABASE_URL).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from channel.graph.callbacks import delivery_reference
from channel.models import InboundEvent, InboundMessage
from channel.signals import statuses_received
from channel.webhook.drain import process_pending_inbound_events
from channel.webhook.wake_flag import WAKE_KEY
from subscribers.models import Delivery
from tests.channel.webhook.helpers import envelope, post_webhook, status_item, text_item
from tests.factories import make_delivery, make_post, make_subscriber, make_topic
from topics.models import Post

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "whatsapp"
HUGE = 10**3999  # 4,000 digits: JSON reads it (the limit is 4,300), a float cannot hold it


@pytest.fixture(autouse=True)
def _archive_only(redis_conn, fake_graph):
    """The wake-up flag is held, so POSTs only archive and each test runs the drain itself;
    replies the conversation queues would go to the fake Graph API, never to Meta."""
    redis_conn.set(WAKE_KEY, 1)


def _post(client, payload) -> None:
    body = json.dumps(payload).encode()  # "\u0000", "\ud800", Infinity: escaped as Meta would
    assert post_webhook(client, body).status_code == 200


def _followers(client, n: int) -> tuple[str, Delivery]:
    """A citizen's message and a post's status, arriving after the hostile webhook."""
    post = make_post(topics=[make_topic()], status=Post.Status.SENDING)
    delivery = make_delivery(
        post=post, subscriber=make_subscriber(), status="sent", wa_message_id=f"wamid.after{n}"
    )
    message = text_item(f"393337{n:06d}", "Iscrivimi")
    _post(client, envelope(messages=[message]))
    status = status_item(
        delivery.wa_message_id, "delivered", callback=delivery_reference(delivery.pk)
    )
    _post(client, envelope(statuses=[status]))
    return message["id"], delivery


def _assert_drained_and_followers_flowed(wamid: str, delivery: Delivery) -> None:
    process_pending_inbound_events()  # must not raise
    assert not InboundEvent.objects.filter(processed_at__isnull=True).exists()
    assert InboundMessage.objects.get(wamid=wamid).processed_at is not None  # answered
    delivery.refresh_from_db()
    assert delivery.status == "delivered"


def _meta_error(title: str, details: str = "") -> dict:
    return {"code": 131000, "title": title, "error_data": {"details": details}}


@pytest.mark.parametrize(
    "title",
    ["Something went wrong\u0000", "\ud800 lone surrogate", "both \udfff\u0000"],
    ids=["nul", "surrogate", "both"],
)
def test_a_meta_error_the_database_cannot_store_is_set_aside_and_later_webhooks_flow(client, title):
    """Meta's `errors[]` title is quoted in the webhook's problem lines: before they were
    cleaned, writing them failed and rolled back the whole batch, on every pass."""
    poisoned = envelope()
    poisoned["entry"][0]["changes"][0]["value"]["errors"] = [_meta_error(title, title)]
    _post(client, poisoned)
    wamid, delivery = _followers(client, 1)

    _assert_drained_and_followers_flowed(wamid, delivery)
    problems = InboundEvent.objects.order_by("id").first().problems
    assert problems.startswith("Meta error 131000: ")
    assert "\x00" not in problems


@pytest.mark.parametrize(
    "poison",
    [
        {"text": {"body": "ciao \ud800"}, "from": "3933379\udc0099"},
        {"text": {"body": "ciao\u0000"}, "id": "wamid.nul\u0000"},
        {"timestamp": HUGE},
        {"timestamp": -HUGE, "context": {"id": HUGE}},
        {"timestamp": math.inf, "errors": [{"code": math.inf}, {"code": HUGE}]},
    ],
    ids=["surrogates", "nul", "huge-timestamp", "huge-negative", "infinity"],
)
def test_a_citizens_message_with_hostile_values_is_still_answered(client, poison):
    message = text_item("393337999999", "Iscrivimi") | poison
    _post(client, envelope(messages=[message]))
    wamid, delivery = _followers(client, 2)

    _assert_drained_and_followers_flowed(wamid, delivery)
    hostile = InboundMessage.objects.exclude(wamid=wamid).get()  # stored, cleaned
    assert hostile.processed_at is not None
    assert "\x00" not in hostile.wamid + hostile.wa_id


def test_a_receivers_problem_lines_are_cleaned_before_they_are_stored(client):
    delivery = _followers(client, 3)[1]

    def quotes_the_webhook(updates, **kwargs):
        return ["saw \u0000 and \ud800"]

    statuses_received.connect(quotes_the_webhook, dispatch_uid="test-quotes")
    try:
        process_pending_inbound_events()
    finally:
        statuses_received.disconnect(dispatch_uid="test-quotes")
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    assert set(InboundEvent.objects.values_list("problems", flat=True)) == {"", "saw  and \ufffd"}


# --- Fuzzing the processor ------------------------------------------------------------------
# Real captured payloads, edited at any place: a value replaced by a hostile one, a hostile
# character put into a string, or a key of Meta's added to an object where it does not belong.

PAYLOADS = {path.stem: json.loads(path.read_text()) for path in sorted(FIXTURES.glob("*.json"))}


def _nodes(value, path=()) -> list[tuple[tuple, object]]:
    found = [(path, value)]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _nodes(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _nodes(item, (*path, index))
    return found


def _where(payload) -> dict[str, list[tuple]]:
    nodes = _nodes(payload)
    return {
        "replace": [path for path, _ in nodes],
        "taint": [path for path, value in nodes if isinstance(value, str)],
        "add": [path for path, value in nodes if isinstance(value, dict)],
    }


WHERE = {name: _where(payload) for name, payload in PAYLOADS.items()}
TAINTS = ["\u0000", "\ud800", "\udfff", "\ud83d"]  # NUL; lone surrogates: high, low, half a pair
scalars = st.sampled_from(
    [*TAINTS, "", "x" * 300, HUGE, -HUGE, math.inf, -math.inf, math.nan, 1e308, 0.5, -1, 0]
    + [True, False, None]
)
hostile = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["id", "code", "title", "type", "from", "x"]), inner)
    ),
    max_leaves=6,
)
# Meta's error titles end up in problem lines: give them a better chance than random values.
tainted_errors = st.lists(
    st.builds(_meta_error, st.sampled_from(TAINTS).map("Error: {}".format)), min_size=1
)
meta_keys = st.sampled_from(
    ["errors", "messages", "statuses", "contacts", "user_preferences", "entry", "changes"]
    + ["value", "timestamp", "id", "from", "text", "interactive", "error_data", "code"]
)
EDITS = {
    "replace": hostile,
    "taint": st.sampled_from(TAINTS),
    "add": st.tuples(meta_keys, hostile) | st.tuples(st.just("errors"), tainted_errors),
}


def _edit(payload, path: tuple, kind: str, argument):
    if not path:
        return _edited(payload, kind, argument)
    parent = payload
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = _edited(parent[path[-1]], kind, argument)
    return payload


def _edited(value, kind: str, argument):
    if kind == "replace":
        return argument
    if kind == "taint":
        middle = len(value) // 2
        return value[:middle] + argument + value[middle:]
    key, item = argument
    return value | {key: item}


@st.composite
def hostile_payloads(draw):
    name = draw(st.sampled_from(sorted(PAYLOADS)))
    payload = json.loads(json.dumps(PAYLOADS[name]))  # a fresh copy to edit
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(sorted(EDITS)))
        path = draw(st.sampled_from(WHERE[name][kind]))
        try:
            payload = _edit(payload, path, kind, draw(EDITS[kind]))
        except (KeyError, IndexError, TypeError):  # an earlier edit changed the shape there
            continue
    return payload


FUZZ = hypothesis_settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_numbers = iter(range(10_000, 1_000_000))


@FUZZ
@given(payload=hostile_payloads())
def test_no_webhook_content_stops_the_drain(client, payload):
    """Whatever one webhook holds, the drain finishes, leaves nothing pending, and the
    webhooks after it (a citizen's message, a post's status) are processed as usual."""
    _post(client, payload)
    wamid, delivery = _followers(client, next(_numbers))
    _assert_drained_and_followers_flowed(wamid, delivery)
