"""The fake Graph API answers like Meta (send limits, errors, throughput), over real HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from channel.graph.client import GraphClient
from channel.graph.errors import Handling

TO = "393331234567"


def text(body: str, to: str = TO, **extra) -> dict:
    return {"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": body}} | (
        extra
    )


@pytest.fixture
def client(fake_graph, settings):
    graph = GraphClient(timeout=2)
    yield graph
    graph.close()


def test_accepted_message_gets_a_wamid_and_lands_in_the_outbox(fake_graph, client):
    fake_graph.mark_inbound(TO)
    result = client.send(text("Ciao"))
    assert result.ok and result.wamid.startswith("wamid.")
    [entry] = fake_graph.outbox(to=TO)
    assert entry["id"] == result.wamid
    assert entry["payload"]["text"]["body"] == "Ciao"


def test_text_over_4096_characters_is_rejected_with_code_100(fake_graph, client):
    """Text body ≤ 4,096 characters."""
    fake_graph.mark_inbound(TO)
    assert client.send(text("x" * 4096)).ok
    result = client.send(text("x" * 4097))
    assert (result.error_code, result.handling) == (100, Handling.INVALID)


@pytest.mark.parametrize(
    ("rows", "button", "title", "description", "ok"),
    [
        (10, "Scegli", "Scuola", "Avvisi", True),
        (11, "Scegli", "Scuola", "Avvisi", False),  # ≤10 rows in total
        (3, "x" * 21, "Scuola", "Avvisi", False),  # button ≤20
        (3, "Scegli", "x" * 25, "Avvisi", False),  # row title ≤24
        (3, "Scegli", "Scuola", "x" * 73, False),  # description ≤72
    ],
)
def test_interactive_list_limits(fake_graph, client, rows, button, title, description, ok):
    """Interactive list limits."""
    fake_graph.mark_inbound(TO)
    sections = [
        {"title": "A", "rows": [{"id": f"r{i}", "title": title, "description": description}]}
        for i in range(rows)
    ][:10]
    if rows > 10:
        sections[0]["rows"].append({"id": "extra", "title": "x"})
    payload = {
        "messaging_product": "whatsapp",
        "to": TO,
        "type": "interactive",
        "interactive": {
            "type": "list",
            "body": {"text": "Argomenti"},
            "action": {"button": button, "sections": sections},
        },
    }
    assert client.send(payload).ok is ok


def test_reply_buttons_must_be_unique_and_at_most_three(fake_graph, client):
    fake_graph.mark_inbound(TO)

    def buttons(*titles):
        return {
            "messaging_product": "whatsapp",
            "to": TO,
            "type": "interactive",
            "interactive": {
                "type": "button",
                "body": {"text": "Accetti?"},
                "action": {
                    "buttons": [
                        {"type": "reply", "reply": {"id": f"b{i}", "title": t}}
                        for i, t in enumerate(titles)
                    ]
                },
            },
        }

    assert client.send(buttons("Accetto", "Non accetto")).ok
    assert client.send(buttons("Sì", "Sì")).error_code == 100
    assert client.send(buttons("a", "b", "c", "d")).error_code == 100


def test_free_form_outside_the_24_hour_window_is_131047_and_templates_pass(fake_graph, client):
    """Free-form only within 24 h of the person's last message."""
    result = client.send(text("Ciao"))
    assert (result.error_code, result.handling) == (131047, Handling.NEEDS_TEMPLATE)
    fake_graph.register_template("avviso", "it", "utility", body_params=1)
    template = {
        "messaging_product": "whatsapp",
        "to": TO,
        "type": "template",
        "template": {
            "name": "avviso",
            "language": {"code": "it"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "x"}]}],
        },
    }
    assert client.send(template).ok
    template["template"]["components"][0]["parameters"][0]["text"] = "a\nb"
    assert client.send(template).error_code == 132018  # no newlines in parameters
    template["template"]["components"][0]["parameters"] = []
    assert client.send(template).error_code == 132000
    template["template"]["name"] = "unknown"
    assert client.send(template).error_code == 132001


def test_wrong_or_expired_token_is_190_and_pauses_the_account(fake_graph, settings):
    bad = GraphClient(token="wrong", timeout=2)
    result = bad.send(text("x"))
    assert (result.error_code, result.http_status, result.handling) == (
        190,
        401,
        Handling.ACCOUNT_PAUSE,
    )
    bad.close()
    fake_graph.configure(token_expired=True)
    good = GraphClient(timeout=2)
    assert good.send(text("x")).error_code == 190
    good.close()


def test_throughput_limit_answers_130429(fake_graph, client):
    """Above the number's throughput Meta answers 130429."""
    fake_graph.configure(mps=5, enforce_window=False)
    codes = [client.send(text(f"m{i}", to=f"39333000{i:04d}")).error_code for i in range(8)]
    assert codes[:5] == [None] * 5
    assert codes[5:] == [130429] * 3


def test_pair_rate_answers_131056(fake_graph, client):
    """Too many messages to the same person in a short time."""
    fake_graph.configure(pair_burst=2, enforce_window=False)
    codes = [client.send(text(f"m{i}")).error_code for i in range(3)]
    assert codes == [None, None, 131056]


def test_unreachable_and_marketing_opt_out(fake_graph, client):
    fake_graph.configure(unreachable=[TO], marketing_opted_out=["393330000002"])
    fake_graph.mark_inbound(TO)
    assert client.send(text("x")).handling == Handling.RECIPIENT_UNREACHABLE
    fake_graph.register_template("promo", "it", "marketing")
    template = {
        "messaging_product": "whatsapp",
        "to": "393330000002",
        "type": "template",
        "template": {"name": "promo", "language": {"code": "it"}},
    }
    assert client.send(template).handling == Handling.MARKETING_OPT_OUT


def test_a_hang_is_maybe_sent_and_may_still_reach_meta(fake_graph, client):
    fake_graph.configure(timeout_rate=1.0, hang_seconds=3, fault_after_accept_rate=1.0)
    fake_graph.mark_inbound(TO)
    result = client.send(text("x", biz_opaque_callback_data="d:1"))
    assert result.maybe_sent and not result.ok
    assert [e["callback"] for e in fake_graph.outbox(to=TO)] == ["d:1"]


def test_server_errors_are_transient(fake_graph, client):
    fake_graph.configure(error_5xx_rate=1.0)
    result = client.send(text("x"))
    assert (result.http_status, result.handling) == (500, Handling.TRANSIENT)


def test_status_webhooks_are_signed_batched_and_echo_the_callback(fake_graph, client):
    received: list[tuple[bytes, str]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, self.headers["X-Hub-Signature-256"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    fake_graph.configure(webhook_url=url, status_batch_size=50, status_delay_ms=200, read_rate=1)
    fake_graph.mark_inbound(TO)  # also posts the inbound message itself
    for i in range(3):
        assert client.send(text(f"m{i}", biz_opaque_callback_data=f"d:{i}")).ok
    fake_graph.flush_statuses()
    receiver.shutdown()
    statuses = []
    for body, signature in received:
        expected = hmac.new(b"test-app-secret", body, hashlib.sha256).hexdigest()
        assert signature == f"sha256={expected}"
        value = json.loads(body)["entry"][0]["changes"][0]["value"]
        statuses += value.get("statuses", [])
    assert len(statuses) == 9  # sent, delivered, read for each
    assert len(received) <= 3  # batched: one inbound POST plus at most two status POSTs
    assert {s["biz_opaque_callback_data"] for s in statuses} == {"d:0", "d:1", "d:2"}


def test_control_rejects_unknown_options(fake_graph):
    response = httpx.post(f"{fake_graph.url}/_fake/config", json={"nonsense": 1})
    assert response.status_code == 400


def test_one_status_per_post_and_read_without_delivered(fake_graph, client):
    """Meta does not batch statuses for sure, and a `read` may come with no `delivered`."""
    received: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body)["entry"][0]["changes"][0]["value"])
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    fake_graph.mark_inbound(TO)
    fake_graph.configure(
        webhook_url=url, status_batch_size=1, read_rate=1, read_without_delivered_rate=1
    )
    for i in range(3):
        assert client.send(text(f"m{i}", biz_opaque_callback_data=f"d:{i}")).ok
    fake_graph.flush_statuses()
    receiver.shutdown()
    posts = [value["statuses"] for value in received if "statuses" in value]
    assert all(len(statuses) == 1 for statuses in posts)  # one status per POST
    statuses = [s for batch in posts for s in batch]
    assert sorted(s["status"] for s in statuses) == ["read"] * 3 + ["sent"] * 3
    # The read carries the pricing that the delivered would have.
    assert all("pricing" in s for s in statuses if s["status"] == "read")
