"""Build and post Meta-shaped webhook bodies (https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components).

POSTs go through `deploy.wsgi.application`, the entry point gunicorn serves: the webhook POST
is answered there by `channel.webhook.intake.WebhookIntake`, in front of Django, so Django's test
client (which calls Django's handler directly) would miss the production path.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace

from django.conf import settings
from django.core import signals
from django.core.servers.basehttp import ThreadedWSGIServer
from django.db import close_old_connections, connection, transaction
from django.test import RequestFactory
from django.test.testcases import QuietWSGIRequestHandler

from channel.webhook.envelope import webhook_envelope
from channel.webhook.signatures import HEADER, sign

URL = "/whatsapp/webhook/"
_ids = itertools.count(1)
_AUTO = object()


def wamid() -> str:
    return f"wamid.TEST{time.time_ns()}{next(_ids)}"


def text_item(wa_id: str, body: str, *, at: int | None = None) -> dict:
    return {
        "from": wa_id,
        "id": wamid(),
        "timestamp": str(at or int(time.time())),
        "type": "text",
        "text": {"body": body},
    }


def status_item(
    message_id: str, status: str, *, recipient: str = "393330000000", callback: str = ""
) -> dict:
    item = {
        "id": message_id,
        "status": status,
        "timestamp": str(int(time.time())),
        "recipient_id": recipient,
    }
    if callback:
        item["biz_opaque_callback_data"] = callback
    return item


def envelope(*, messages: list | None = None, statuses: list | None = None) -> dict:
    value: dict = {}
    if messages:
        value["contacts"] = [{"profile": {"name": "Test"}, "wa_id": m["from"]} for m in messages]
        value["messages"] = messages
    if statuses:
        value["statuses"] = statuses
    return webhook_envelope(
        value,
        phone_number_id="100000000000001",
        display_phone_number="390434000000",
        entry_id="WABA1",
    )


@dataclass
class WSGIResponse:
    status_code: int
    content: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> str:
        return self.headers[name]


def call_wsgi(request) -> WSGIResponse:
    """Run a RequestFactory request through deploy.wsgi.application, as gunicorn would."""
    from deploy.wsgi import application

    found: dict = {}

    def start_response(status: str, headers: list, exc_info=None) -> None:
        found["status"], found["headers"] = int(status.split()[0]), dict(headers)

    # As Django's test client does: the test's transaction must not be closed as "obsolete"
    # by the request signals when a request falls through to Django.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        result = application(request.environ, start_response)
        try:
            content = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    return WSGIResponse(found["status"], content, found["headers"])


def post_webhook(client, body: bytes, *, signature=_AUTO, headers: dict | None = None):
    """POST a webhook the way Meta does, through the production WSGI entry point.

    ``client`` (Django's test client) is not used: it would bypass the lean intake path.
    It stays in the signature for the many callers that have one at hand.
    """
    headers = dict(headers or {})
    if signature is _AUTO:
        signature = sign(body, settings.WHATSAPP_APP_SECRET)
    if signature is not None:
        headers[HEADER] = signature
    request = RequestFactory().post(
        URL, data=body, content_type="application/json", headers=headers
    )
    return call_wsgi(request)


@contextmanager
def wsgi_server():
    """`deploy.wsgi.application` served on a free loopback port, one thread per request.

    pytest-django's live server runs Django's own handler, which never sees the lean intake;
    this serves what gunicorn serves. Yields an object with `.url`, like the live server. Use
    it in transactional tests only (the server's threads have their own connections).
    """
    from deploy.wsgi import application

    server = ThreadedWSGIServer(("127.0.0.1", 0), QuietWSGIRequestHandler)
    server.set_app(application)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@contextmanager
def held_by_another_session(take: Callable[[], object]) -> Iterator[None]:
    """`take` runs in a transaction of another database session (a thread of its own), which
    keeps the locks it took until the block ends."""
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with transaction.atomic():
            take()
            locked.set()
            release.wait(10)
        connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        yield
    finally:
        release.set()
        holder.join()
