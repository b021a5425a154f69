"""Webhook intake: the POST of /whatsapp/webhook/ served as a plain WSGI callable.

Status webhooks arrive at about three per message sent, one per POST when Meta does not batch
them, so this one request is the hottest path of the web process.
`deploy.wsgi` puts `WebhookIntake` in front of Django: a POST to the webhook path with an
allowed Host is answered here without Django's request, middleware and response objects
(about 4× less CPU per POST, measured by bench/webhook_intake.py). Everything else goes to
Django unchanged: the GET handshake, other methods and paths, and a disallowed Host (Django
answers that 400 and logs it, exactly as before).

`respond` is the intake itself and the only one: the Django view calls it too, so both routes
give the same answers. It verifies the signature (`channel.webhook.signatures`), archives the
raw body (`channel.webhook.archive`; a forged one is only counted, `channel.webhook.forgeries`)
and wakes the processor; processing runs later, in Celery
(`channel.webhook.drain`). Waking means publishing a Celery task, and tasks sit above this room,
so the wiring hands the wake-up in: `deploy.wsgi` and `channel.urls` pass
`channel.tasks.enqueue_inbound_processing` as `wake_processor`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.signals import setting_changed
from django.db import DEFAULT_DB_ALIAS, connections
from django.dispatch import receiver
from django.http import HttpRequest

from channel.webhook.archive import record_inbound_event
from channel.webhook.body_deadline import BodyDeadline, BodyTimeout
from channel.webhook.forgeries import record_forged_post
from channel.webhook.signatures import HEADER, verify

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/whatsapp/webhook/"
SIGNATURE_ENVIRON_KEY = "HTTP_" + HEADER.upper().replace("-", "_")  # its name in WSGI
_HTML = "text/html; charset=utf-8"  # what Django's HttpResponse says for an empty body


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes = b""
    content_type: str = _HTML


ACCEPTED = Reply(200)
BAD_REQUEST = Reply(400)
MALFORMED = Reply(400, b"malformed JSON", "text/plain")
UNSIGNED = Reply(401)
FORGED = Reply(403)
TOO_LARGE = Reply(413)
# The body did not arrive whole within BANDITORE_WEBHOOK_BODY_SECONDS (`body_deadline`).
TIMED_OUT = Reply(408)
# The archive could not be written (database down): not 200, so Meta delivers it again later
# (it retries for up to 7 days). Never a bare 500 page.
UNAVAILABLE = Reply(503, b"try again later", "text/plain")
_STATUS_LINES = {s: f"{s} {HTTPStatus(s).phrase}" for s in (200, 400, 401, 403, 408, 413, 503)}


def respond(
    read: Callable[[int], bytes],
    content_length: str | None,
    signature: str | None,
    wake_processor: Callable[[], None],
) -> Reply:
    """Answer one webhook POST: verify, archive, then `wake_processor()`. Never raises."""
    try:
        return _receive(read, content_length, signature, wake_processor)
    except BodyTimeout:
        return TIMED_OUT
    except Exception:
        # Nothing was archived (the INSERT is the last step that can fail: the wake-up logs its
        # own errors), so Meta must send it again.
        logger.exception("webhook POST could not be archived; answered 503 so Meta retries")
        return UNAVAILABLE


def _receive(
    read: Callable[[int], bytes],
    content_length: str | None,
    signature: str | None,
    wake_processor: Callable[[], None],
) -> Reply:
    limit = settings.BANDITORE_WEBHOOK_MAX_BYTES
    try:
        declared = int(content_length or 0)
    except ValueError:
        return BAD_REQUEST
    if declared > limit:
        return TOO_LARGE
    # Our own cap, not Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB): a full batch of 1,000
    # updates may exceed that. Never read past Content-Length (PEP 3333).
    body = _read(read, declared)
    if not signature:
        return UNSIGNED
    # The HMAC covers the raw bytes, so verify before parsing anything.
    if not verify(body, signature, settings.WHATSAPP_APP_SECRET):
        # Counted, and archived only as a bounded sample: a flood must not fill the disk.
        record_forged_post(body=body)
        return FORGED
    try:
        json.loads(body)
    except (ValueError, RecursionError):  # bytes that are not UTF-8 too; nested too deep
        record_inbound_event(body=body, signature_valid=True, problems="malformed JSON")
        return MALFORMED
    record_inbound_event(body=body, signature_valid=True)
    wake_processor()
    return ACCEPTED


def _read(read: Callable[[int], bytes], size: int) -> bytes:
    chunks, missing = [], size
    while missing > 0:
        chunk = read(missing)
        if not chunk:  # the client stopped early: what arrived is what gets verified
            break
        chunks.append(chunk)
        missing -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


# Host headers already found allowed (a handful in practice; bounded against junk).
_allowed_hosts: set[tuple] = set()


def _host_allowed(environ: dict) -> bool:
    """Django's own rule (ALLOWED_HOSTS, X-Forwarded-Host, the DEBUG defaults), evaluated on a
    bare request object the first time a Host is seen, then remembered."""
    key = (
        environ.get("HTTP_HOST"),
        environ.get("HTTP_X_FORWARDED_HOST"),
        environ.get("SERVER_NAME"),
        environ.get("SERVER_PORT"),
        environ.get("wsgi.url_scheme"),
    )
    if key in _allowed_hosts:
        return True
    request = HttpRequest()
    request.META = environ
    try:
        request.get_host()
    except DisallowedHost:
        return False
    if len(_allowed_hosts) < 64:
        _allowed_hosts.add(key)
    return True


@receiver(setting_changed)
def _forget_allowed_hosts(*, setting: str, **kwargs) -> None:
    if setting in {"ALLOWED_HOSTS", "DEBUG", "USE_X_FORWARDED_HOST", "SECURE_PROXY_SSL_HEADER"}:
        _allowed_hosts.clear()


def _close_if_obsolete(db) -> None:
    # What Django does on request_started/finished: drop a broken connection or one older than
    # CONN_MAX_AGE. Never inside a transaction (only tests call us inside one).
    if not db.in_atomic_block:
        db.close_if_unusable_or_obsolete()


class WebhookIntake:
    """WSGI middleware: answers the webhook POST itself and hands everything else to `app`."""

    def __init__(
        self, app: Callable, *, wake_processor: Callable[[], None], path: str = WEBHOOK_PATH
    ) -> None:
        self.app = app
        self.wake_processor = wake_processor
        self.path = path

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if (
            environ.get("REQUEST_METHOD") != "POST"
            or environ.get("PATH_INFO") != self.path
            or not _host_allowed(environ)
        ):
            return self.app(environ, start_response)
        db = connections[DEFAULT_DB_ALIAS]
        _close_if_obsolete(db)
        # A client dribbling its body must not hold this thread: gunicorn hands us the socket,
        # whose read side is shut when the body is late (the connection then closes).
        body = BodyDeadline(
            environ["wsgi.input"].read,
            environ.get("gunicorn.socket"),
            settings.BANDITORE_WEBHOOK_BODY_SECONDS,
        )
        try:
            reply = respond(
                body.read,
                environ.get("CONTENT_LENGTH"),
                environ.get(SIGNATURE_ENVIRON_KEY),
                self.wake_processor,
            )
        finally:
            body.close()
            _close_if_obsolete(db)
        if reply.status >= 400 and reply is not FORGED:
            # Django's request logger says the same for 4xx answers of the view. Not for each
            # forged POST (a flood would fill the log instead): the archive logs its samples.
            logger.warning("webhook POST answered %s", reply.status)
        start_response(
            _STATUS_LINES[reply.status],
            [("Content-Type", reply.content_type), ("Content-Length", str(len(reply.body)))],
        )
        return [reply.body]
