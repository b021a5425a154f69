"""Clients that dribble a webhook body cannot starve the web server: gunicorn, as configured by
deploy/gunicorn.conf.py, keeps answering /healthz, and the dribblers get 408 at their deadline.

Loopback only. More dribblers than the server has threads, each sending the headers of a
webhook POST at once and then its body a byte a second: without a deadline every thread would
wait on them for a minute.
"""

from __future__ import annotations

import select
import socket
import threading
import time

import httpx
import pytest

from tests.deploy.helpers import running_gunicorn

THREADS = 2
DRIBBLERS = 3 * THREADS
BODY_BYTES = 60  # a minute at a byte a second: far longer than this test may take
DEADLINE_SECONDS = 2
BUDGET_SECONDS = 18


@pytest.fixture
def gunicorn_url():
    env = {
        "GUNICORN_THREADS": str(THREADS),
        "BANDITORE_WEBHOOK_BODY_SECONDS": str(DEADLINE_SECONDS),
    }
    with running_gunicorn(env, "/dev/null") as (port, base):
        yield port, base


def _open_dribbler(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(
        b"POST /whatsapp/webhook/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nX-Hub-Signature-256: sha256=" + b"0" * 64 + b"\r\n"
        b"Content-Length: %d\r\n\r\n{" % BODY_BYTES
    )
    return sock


def _dribble(socks: list[socket.socket], outcomes: dict, stop: threading.Event) -> None:
    """A byte a second to each open connection; note what each got back (status line or
    closed) and after how many bytes of its body."""
    sent = dict.fromkeys(range(len(socks)), 1)
    while len(outcomes) < len(socks) and not stop.wait(1.0):
        for n, sock in enumerate(socks):
            if n in outcomes:
                continue
            try:
                if select.select([sock], [], [], 0)[0]:
                    outcomes[n] = (sock.recv(64).split(b"\r\n")[0] or b"closed", sent[n])
                    continue
                sock.sendall(b" ")
                sent[n] += 1
            except OSError:  # reset: the server closed it with our unread bytes pending
                outcomes[n] = (b"closed", sent[n])


def test_dribbling_webhook_bodies_do_not_starve_healthz(gunicorn_url):
    port, base = gunicorn_url
    socks = [_open_dribbler(port) for _ in range(DRIBBLERS)]
    outcomes: dict[int, tuple[bytes, int]] = {}
    stop = threading.Event()
    dribbler = threading.Thread(target=_dribble, args=(socks, outcomes, stop), daemon=True)
    dribbler.start()
    started = time.monotonic()
    answers = []
    try:
        time.sleep(0.5)  # the dribblers' headers are in: they hold every thread now
        while len(outcomes) < DRIBBLERS and time.monotonic() - started < BUDGET_SECONDS:
            try:
                response = httpx.get(f"{base}/healthz", timeout=BUDGET_SECONDS)
            except httpx.TimeoutException:
                pytest.fail("/healthz went unanswered while slow clients held the server")
            answers.append((response.status_code, len(outcomes)))
        dribbler.join(BUDGET_SECONDS - (time.monotonic() - started))
    finally:
        stop.set()
        for sock in socks:
            sock.close()
    # /healthz answered while dribblers were still connected, long before any body was whole.
    assert answers and all(status == 200 for status, _ in answers)
    assert answers[0][1] < DRIBBLERS
    # Every dribbler was cut off at its deadline, not served at the end of its body.
    assert len(outcomes) == DRIBBLERS, outcomes
    for status, sent in outcomes.values():
        assert status.startswith(b"HTTP/1.1 408") or status == b"closed", status
        assert sent < BODY_BYTES
