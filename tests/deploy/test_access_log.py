"""The web server's access log keeps secrets and phone numbers out: no query strings."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.deploy.helpers import running_gunicorn

SECRET = "verify-token-that-must-not-be-logged"
NUMBER = "393331234567"


@pytest.fixture
def gunicorn_log(tmp_path):
    log = tmp_path / "access.log"
    with running_gunicorn({"WHATSAPP_VERIFY_TOKEN": SECRET}, str(log)) as (_, base):
        yield base, log


def test_no_token_or_number_reaches_the_access_log(gunicorn_log):
    base, log = gunicorn_log
    handshake = {"hub.mode": "subscribe", "hub.verify_token": SECRET, "hub.challenge": "42"}
    httpx.get(f"{base}/whatsapp/webhook/", params=handshake, timeout=10)
    httpx.get(f"{base}/admin/subscribers/subscriber/", params={"q": NUMBER}, timeout=10)
    httpx.get(f"{base}/simulator/outbox", params={"to": NUMBER}, timeout=10)
    deadline = time.monotonic() + 10  # the access log line is written after the response
    while "/simulator/outbox" not in (text := log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "/whatsapp/webhook/" in text and "/simulator/outbox" in text
    assert SECRET not in text
    assert NUMBER not in text
