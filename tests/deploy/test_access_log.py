"""The web server's access log keeps secrets and phone numbers out: no query strings."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
SECRET = "verify-token-that-must-not-be-logged"
NUMBER = "393331234567"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def gunicorn_log(tmp_path):
    port = _free_port()
    log = tmp_path / "access.log"
    env = os.environ | {
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "REDIS_URL": settings.REDIS_URL,
        "WHATSAPP_VERIFY_TOKEN": SECRET,
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "deploy.wsgi", "--config", "deploy/gunicorn.conf.py",
         "--access-logfile", str(log)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=1.0)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        yield base, log
    finally:
        server.terminate()
        server.wait(timeout=20)


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
