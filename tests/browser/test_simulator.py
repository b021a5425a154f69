"""The chat simulator in a real Chromium: join, accept, pick 3 topics, finish, leave.

Real path end to end: the page posts to the simulator's backend, which signs a Meta-shaped
webhook (X-Hub-Signature-256) and POSTs it to the live server's /whatsapp/webhook/;
Celery runs eagerly inside that request; replies go through the real GraphClient to the fake
Graph API, whose outbox the page polls.
"""

from __future__ import annotations

import json
import time

import pytest
from django.conf import settings

from channel.models import InboundEvent, InboundMessage
from subscribers.models import ConsentEvent, Subscriber
from tests.browser.conftest import TIMEOUT_MS, screenshot
from tests.factories import make_topic

NUMBER = "393339876543"
OTHER = "393339876500"


@pytest.fixture(autouse=True)
def _simulator_numbers(settings):
    settings.BANDITORE_SIMULATOR_NUMBERS = [NUMBER, OTHER]


def _log_in(page, client, live_server, admin_user) -> None:
    client.force_login(admin_user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": cookie.value, "url": live_server.url}]
    )


def _service_messages(page):
    return page.locator("#sim-chat [data-testid=service-message]")


def _wait_for_more(page, count: int) -> None:
    page.wait_for_function(
        "n => document.querySelectorAll('#sim-chat [data-testid=service-message]').length > n",
        arg=count,
        timeout=TIMEOUT_MS,
    )


def _tap_row(page, text: str) -> None:
    before = _service_messages(page).count()
    page.locator("#sim-chat .list-open").last.click()
    page.locator("#sim-sheet .list-row", has_text=text).first.click()
    _wait_for_more(page, before)


def _wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def _open_simulator(page, client, live_server, admin_user, number: str) -> None:
    _log_in(page, client, live_server, admin_user)
    page.goto(f"{live_server.url}/simulator/")
    page.fill("#sim-number", number)
    page.click("#sim-switch")
    page.wait_for_selector("#sim-chat[data-ready='1']")


def test_the_phone_shows_lists_and_buttons_and_taps_become_signed_webhooks(
    transactional_db, live_server, client, admin_user, fake_graph, redis_conn, browser_page
):
    """Independent of the conversation: what reaches the fake is drawn; taps go to the
    webhook as Meta's list_reply / button_reply ."""
    from channel.graph.client import get_client

    number = OTHER
    page = browser_page
    _open_simulator(page, client, live_server, admin_user, number)
    fake_graph.mark_inbound(number)
    interactive = {"messaging_product": "whatsapp", "to": number, "type": "interactive"}
    rows = [
        {"id": "row-a", "title": "Scuole", "description": "Avvisi"},
        {"id": "row-b", "title": "Rifiuti"},
    ]
    list_message = {
        "type": "list",
        "body": {"text": "Scegli gli argomenti"},
        "action": {"button": "Argomenti", "sections": [{"title": "Temi", "rows": rows}]},
    }
    buttons = {
        "type": "button",
        "body": {"text": "Accetti?"},
        "action": {"buttons": [{"type": "reply", "reply": {"id": "yes", "title": "Accetto"}}]},
    }
    assert get_client().send(interactive | {"interactive": list_message}).ok
    assert get_client().send(interactive | {"interactive": buttons}).ok
    _service_messages(page).nth(1).wait_for()

    page.locator("#sim-chat .list-open").last.click()
    page.locator("#sim-sheet .list-row", has_text="Scuole").click()
    _wait_until(lambda: InboundMessage.objects.filter(wa_id=number).count() == 1)
    page.locator("#sim-chat .reply-button", has_text="Accetto").click()
    _wait_until(lambda: InboundMessage.objects.filter(wa_id=number).count() == 2)

    # Meta's bytes (compact, escaped): compared as JSON.
    bodies = [json.loads(e.body) for e in InboundEvent.objects.filter(signature_valid=True)]
    taps = [
        m["interactive"]
        for b in bodies
        for m in b["entry"][0]["changes"][0]["value"].get("messages", [])
    ]
    assert any(t.get("list_reply", {}).get("id") == "row-a" for t in taps)
    assert {"type": "button_reply", "button_reply": {"id": "yes", "title": "Accetto"}} in taps
    assert page.locator("#sim-chat [data-testid=user-message]").count() == 2


def test_join_accept_three_topics_finish_and_leave(
    transactional_db, live_server, client, admin_user, fake_graph, redis_conn, browser_page
):
    topics = [make_topic(name_it=name) for name in ("Scuole", "Lavori stradali", "Rifiuti")]
    make_topic(name_it="Cultura")
    page = browser_page
    _open_simulator(page, client, live_server, admin_user, NUMBER)

    page.fill("#sim-text", "Iscrivimi")
    page.click("#sim-send")
    page.locator("#sim-chat .reply-button", has_text="Accetto").first.wait_for()
    before = _service_messages(page).count()
    page.locator("#sim-chat .reply-button", has_text="Accetto").first.click()
    _wait_for_more(page, before)
    page.locator("#sim-chat .list-open").last.wait_for()

    for topic in topics:
        _tap_row(page, topic.name_it)
    _tap_row(page, "Fatto")
    confirmation = _service_messages(page).last.inner_text()
    for topic in topics:
        assert topic.name_it in confirmation

    subscriber = Subscriber.objects.get(wa_id=NUMBER)
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert set(subscriber.topics.values_list("pk", flat=True)) == {t.pk for t in topics}

    before = _service_messages(page).count()
    page.fill("#sim-text", "cancellami")
    page.click("#sim-send")
    _wait_for_more(page, before)
    screenshot(page, "simulator.png")

    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.LEFT
    kinds = list(subscriber.consent_events.values_list("kind", flat=True))
    assert ConsentEvent.Kind.CONSENT in kinds
    assert ConsentEvent.Kind.LEAVE in kinds
    # Every reply reached "Meta" (the fake) and the page showed each one.
    assert len(fake_graph.outbox(to=NUMBER)) == _service_messages(page).count()
