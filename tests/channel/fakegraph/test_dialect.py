"""The fake speaks Meta's exact dialect, over real HTTP: webhook bodies as Meta's bytes, the
default throughput limit, business-scoped user ids, and requests checked against Meta's own
OpenAPI document (every request example in it passes; every payload we build passes it and the
fake's own rules)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from channel.fakegraph.openapi import MESSAGES, operations, spec_problems
from channel.fakegraph.validation import Template, validate_message
from channel.graph import payloads
from channel.webhook.signatures import HEADER, verify

TO = "393331234567"


class Receiver:
    """A webhook endpoint that keeps every POST's raw bytes and headers."""

    def __init__(self) -> None:
        self.posts: list[tuple[bytes, dict]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802  (http.server's name)
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                owner.posts.append((raw, dict(self.headers)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def values(self) -> list[dict]:
        return [
            change["value"]
            for raw, _headers in self.posts
            for entry in json.loads(raw)["entry"]
            for change in entry["changes"]
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(fake_graph):
    found = Receiver()
    fake_graph.configure(webhook_url=found.url, status_delay_ms=0)
    yield found
    found.close()


def send(fake_graph, payload: dict) -> httpx.Response:
    return httpx.post(
        f"{fake_graph.url}/v23.0/100000000000001/messages",
        json=payload,
        headers={"Authorization": "Bearer test-access-token"},
    )


# --- webhook bodies: Meta's bytes ------------------------------------------------------------


def test_webhook_bodies_are_metas_bytes_escaped_and_signed_as_sent(fake_graph, receiver, settings):
    fake_graph.mark_inbound(TO, text="Perché è chiuso? https://comune.example.it/a/b 😀")
    assert send(fake_graph, payloads.text(TO, "Città")).status_code == 200
    fake_graph.flush_statuses()
    assert len(receiver.posts) >= 2
    for raw, headers in receiver.posts:
        assert raw.isascii()  # every non-ASCII character escaped, as Meta does
        assert b"/" not in raw.replace(b"\\/", b"")  # and every slash
        assert b" " not in raw.replace(b"\\u", b"").split(b'"body":')[0]  # compact
        assert verify(raw, headers[HEADER], settings.WHATSAPP_APP_SECRET)  # over these bytes
        rewritten = json.dumps(json.loads(raw), ensure_ascii=False).encode()
        assert not verify(rewritten, headers[HEADER], settings.WHATSAPP_APP_SECRET)
    inbound_raw = receiver.posts[0][0]
    assert b"Perch\\u00e9 \\u00e8 chiuso? https:\\/\\/comune.example.it\\/a\\/b \\ud83d\\ude00" in (
        inbound_raw
    )
    [message] = receiver.values()[0]["messages"]
    assert message["text"]["body"] == "Perché è chiuso? https://comune.example.it/a/b 😀"


@pytest.mark.django_db(transaction=True)
def test_metas_escaped_bytes_reach_the_conversation_through_our_webhook(fake_graph):
    from channel.models import InboundEvent
    from channel.webhook.drain import process_pending_inbound_events
    from subscribers.models import Subscriber
    from tests.channel.webhook.helpers import wsgi_server

    with wsgi_server() as server:
        fake_graph.configure(webhook_url=f"{server.url}/whatsapp/webhook/")
        answer = fake_graph.mark_inbound(TO, text="Iscrivimi, però")
        assert answer["webhook_status"] == 200
    process_pending_inbound_events()
    event = InboundEvent.objects.get(body__contains="per\\u00f2")  # the reply's statuses too
    assert event.problems == ""
    assert Subscriber.objects.get(wa_id=TO).status == Subscriber.Status.PENDING


# --- throughput ------------------------------------------------------------------------------


def test_throughput_is_limited_at_metas_default_80_per_second_unless_set(fake_graph):
    assert fake_graph.configure()["mps"] == 80  # the default, after the fixture's reset
    fake_graph.configure(enforce_window=False)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=fake_graph.url) as http:
            return await asyncio.gather(
                *(
                    http.post(
                        "/v23.0/100000000000001/messages",
                        json=payloads.text(f"39333{n:07d}", "Ciao"),
                        headers={"Authorization": "Bearer test-access-token"},
                    )
                    for n in range(200)
                )
            )

    started = time.monotonic()
    answers = asyncio.run(burst())
    elapsed = time.monotonic() - started
    codes = [a.json().get("error", {}).get("code") for a in answers]
    assert set(codes) <= {None, 130429}
    assert fake_graph.stats()["max_per_second"] <= 80  # never more in any one second
    if elapsed < 1.0:  # all within a second (the usual case): exactly 80 got through
        assert codes.count(None) == 80
    fake_graph.configure(mps=1000)
    assert send(fake_graph, payloads.text(TO, "Ciao")).status_code == 200


# --- business-scoped user ids ----------------------------------------------------------------


def test_a_send_by_user_id_is_answered_with_it_and_its_statuses_carry_it(fake_graph, receiver):
    user_id = "IT.13491208655302741918"
    fake_graph.mark_inbound(user_id)
    answer = send(fake_graph, payloads.text(user_id, "Ciao"))
    assert answer.status_code == 200
    [contact] = answer.json()["contacts"]
    assert contact == {"input": user_id, "user_id": user_id}
    fake_graph.flush_statuses()
    statuses = [s for v in receiver.values() for s in v.get("statuses", [])]
    assert {s["status"] for s in statuses} >= {"sent", "delivered"}
    assert all(s["recipient_user_id"] == user_id and "recipient_id" not in s for s in statuses)


def test_a_person_with_a_number_has_a_user_id_in_contacts_statuses_and_answers(
    fake_graph, receiver
):
    fake_graph.mark_inbound(TO, text="Ciao")
    answer = send(fake_graph, payloads.text(TO, "Ciao"))
    [contact] = answer.json()["contacts"]
    assert contact["wa_id"] == TO and contact["user_id"].startswith("IT.")
    fake_graph.flush_statuses()
    inbound, *others = receiver.values()
    [person] = inbound["contacts"]
    assert person["wa_id"] == TO and person["user_id"] == contact["user_id"]
    assert inbound["messages"][0]["from_user_id"] == contact["user_id"]
    statuses = [s for v in others for s in v.get("statuses", [])]
    assert statuses and all(s["recipient_user_id"] == contact["user_id"] for s in statuses)
    assert all(s["recipient_id"] == TO for s in statuses)


# --- Meta's OpenAPI document -----------------------------------------------------------------

REQUESTS = [
    (operation, name)
    for operation, item in sorted(operations().items())
    if operation != "POST /whatsapp/webhooks"
    for name in sorted(item["examples"])
]


def test_the_spec_travels_with_the_repository_and_has_metas_examples():
    assert len([r for r in REQUESTS if r[0] == MESSAGES]) >= 50
    assert len(REQUESTS) >= 140


@pytest.mark.parametrize(("operation", "name"), REQUESTS)
def test_every_request_example_in_metas_spec_passes_the_validator(operation, name):
    assert spec_problems(operations()[operation]["examples"][name], operation) == []


WEBHOOKS = sorted(operations()["POST /whatsapp/webhooks"]["examples"])


@pytest.mark.django_db
@pytest.mark.parametrize("name", WEBHOOKS)
def test_every_webhook_example_in_metas_spec_is_taken_by_our_webhook(client, name):
    """The spec's webhook schemas cannot validate inbound payloads (README beside the spec);
    its examples go through our real webhook instead."""
    from channel.models import InboundEvent
    from channel.webhook.drain import process_pending_inbound_events
    from tests.channel.webhook.helpers import post_webhook

    body = operations()["POST /whatsapp/webhooks"]["examples"][name]
    assert post_webhook(client, json.dumps(body).encode()).status_code == 200
    process_pending_inbound_events()
    event = InboundEvent.objects.get()
    assert event.processed_at is not None
    assert not any(line.startswith("error") for line in event.problems.splitlines())


@pytest.mark.parametrize(
    "broken",
    [
        {"type": "text", "text": {"body": 7}},
        {"type": "text", "txt": {"body": "x"}},
        {"type": "image", "image": {"link": "https://x.example/a.jpg"}, "colour": "red"},
        {"type": "interactive", "interactive": {"type": "list", "body": "no object"}},
        {"type": "template", "template": {"language": {"code": "it"}}},
    ],
    ids=["type", "missing-object", "unknown-field", "shape", "template-without-name"],
)
def test_what_the_spec_rejects_the_fake_rejects_with_code_100(fake_graph, broken):
    fake_graph.configure(enforce_window=False)
    payload = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": TO}
    assert spec_problems(payload | broken)
    answer = send(fake_graph, payload | broken)
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, 100)


def built_payloads() -> dict[str, dict]:
    """Every kind of message the project builds (channel.graph.payloads), by phone number and
    by business-scoped user id."""
    built: dict[str, dict] = {}
    for to in (TO, "IT.13491208655302741918"):
        by = "number" if to.isdigit() else "user id"
        kinds = {
            "text": payloads.text(to, "Avviso: *strada chiusa*"),
            "text with preview": payloads.text(to, "https://comune.example.it", preview_url=True),
            "list": payloads.interactive_list(
                to,
                header="I tuoi argomenti",
                body="Tocca un argomento",
                button="Scegli argomenti",
                sections=[("Argomenti", [("t:scuola", "Scuola", "Avvisi"), ("done", "Fatto", "")])],
                footer="Comune",
            ),
            "buttons": payloads.reply_buttons(
                to, body="Accetti?", buttons=[("consent:yes", "Accetto"), ("consent:no", "No")]
            ),
            "flow": payloads.flow(
                to,
                body="Scegli gli argomenti",
                flow_id="1234567890",
                cta="Scegli",
                token="topics",
                screen="TOPICS",
                data=payloads.flow_checkbox_data("topics", [("scuola", "Scuola", "")], []),
            ),
            "template positional": payloads.template(
                to, "avviso_comune", "it", ["Titolo", "Testo"]
            ),
            "template named": payloads.template(
                to, "avviso_named", "it", {"titolo": "Titolo", "testo": "Testo"}
            ),
            "template text header": payloads.template(
                to, "avviso_header", "it", ["Testo"], header=payloads.text_parameter("Titolo")
            ),
            "template image header": payloads.template(
                to,
                "avviso_image",
                "it",
                ["Testo"],
                header=payloads.media_parameter("image", media_id="1234567890"),
            ),
            "template url button": payloads.template(
                to, "avviso_link", "it", ["Testo"], url_buttons=[(0, "notizie/42")]
            ),
        }
        for kind in ("image", "video", "audio", "document", "sticker"):
            caption = "Didascalia" if kind not in ("audio", "sticker") else ""
            name = "avviso.pdf" if kind == "document" else ""
            kinds[f"{kind} by id"] = payloads.media(
                to, kind, media_id="987654321", caption=caption, filename=name
            )
            kinds[f"{kind} by link"] = payloads.media(
                to, kind, link=f"https://comune.example.it/m/{kind}", caption=caption
            )
        for kind, payload in kinds.items():
            built[f"{kind}, by {by}"] = payloads.add_callback(payload, "d:42:1")
    return built


FAKE_TEMPLATES = {
    ("avviso_comune", "it"): Template("avviso_comune", "it", body_params=2),
    ("avviso_named", "it"): Template(
        "avviso_named",
        "it",
        parameter_format="NAMED",
        components=[{"type": "BODY", "text": "{{titolo}}: {{testo}}"}],
    ),
    ("avviso_header", "it"): Template("avviso_header", "it", body_params=1, header="text"),
    ("avviso_image", "it"): Template("avviso_image", "it", body_params=1, header="image"),
    ("avviso_link", "it"): Template(
        "avviso_link",
        "it",
        components=[
            {"type": "BODY", "text": "{{1}}"},
            {
                "type": "BUTTONS",
                "buttons": [
                    {"type": "URL", "text": "Leggi", "url": "https://comune.example.it/{{1}}"}
                ],
            },
        ],
    ),
}


@pytest.mark.parametrize("kind", sorted(built_payloads()))
def test_every_payload_we_build_passes_metas_spec_and_the_fakes_rules(kind):
    payload = built_payloads()[kind]
    assert spec_problems(payload) == []
    assert validate_message(payload, FAKE_TEMPLATES) is None


@pytest.mark.django_db
def test_every_reply_of_the_conversation_passes_metas_spec(fake_graph, settings):
    """The chooser, the consent question, texts and the Flow, as the conversation renders."""
    from subscribers.conversation import machine
    from subscribers.conversation.chooser import topic_chooser
    from subscribers.conversation.machine import Buttons, Text, render

    settings.WHATSAPP_TOPICS_FLOW_ID = "1234567890"

    topics = [
        machine.TopicChoice(f"t{n}", f"Argomento numero {n} del quartiere", f"Topic {n}")
        for n in range(14)
    ]
    replies = [
        Text("Questo canale è solo in uscita."),
        Buttons("Accetti l'informativa?", (("consent:yes", "Accetto"), ("consent:no", "No"))),
        topic_chooser(frozenset({"t1"}), 0, "it", topics, ""),
        topic_chooser(frozenset(), 1, "en", topics, ""),
        topic_chooser(frozenset(), 0, "it", topics, "1234567890"),
    ]
    for reply in replies:
        for to in (TO, "IT.13491208655302741918"):
            payload = render(reply, to)
            assert spec_problems(payload) == [], payload
            assert validate_message(payload, {}) is None, payload


def test_every_list_section_has_a_title_and_the_fake_insists(fake_graph):
    """Meta's list page marks sections[].title required (at most 24 characters)."""
    rows = [("t:scuola", "Scuola", "")]
    with pytest.raises(ValueError, match="title"):
        payloads.interactive_list(TO, body="Scegli", button="Scegli", sections=[("", rows)])
    listed = payloads.interactive_list(TO, body="Scegli", button="Scegli", sections=[("A", rows)])
    del listed["interactive"]["action"]["sections"][0]["title"]
    fake_graph.configure(enforce_window=False)
    answer = send(fake_graph, listed)
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, 100)
    assert "title" in answer.json()["error"]["error_data"]["details"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"link": "https://comune.example.it/notizie/42"},
        {"media_kind": "image", "media_url": "https://comune.example.it/m/a.jpg"},
        {"media_kind": "document", "media_url": "https://comune.example.it/m/avviso.pdf"},
        {
            "media_kind": "video",
            "media_url": "https://comune.example.it/m/v.mp4",
            "body": "x" * 2000,
        },
    ],
    ids=["text", "link", "image", "document", "long-with-video"],
)
def test_every_post_as_a_message_passes_metas_spec_and_the_fakes_rules(fields):
    """A post as the senders build it: free-form inside the window, the template outside."""
    from subscribers.delivery.payloads import Recipient, free_form_payload, template_payload
    from tests.factories import make_post, make_template

    post = make_post(**({"title": "Strada chiusa", "body": "Via Roma, lavori."} | fields))
    template = make_template()
    for to in (TO, "IT.13491208655302741918"):
        recipient = Recipient(
            to if to.isdigit() else None, None if to.isdigit() else to, "it", None
        )
        for payload in (
            free_form_payload(post, recipient),
            template_payload(post, recipient, template),
        ):
            assert spec_problems(payload) == [], payload
            assert validate_message(payload, FAKE_TEMPLATES) is None, payload
