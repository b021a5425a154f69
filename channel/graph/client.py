"""The one WhatsApp Cloud API client: POST /{version}/{phone_number_id}/messages.

It never raises for API or network trouble: every outcome is a ``SendResult`` whose
``handling`` says what to do (channel.graph.errors). A request that may have reached Meta but got no
answer (read timeout, dropped connection) is ``maybe_sent``: callers must not resend it blindly.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import httpx
from django.conf import settings

from channel.graph.errors import Handling, handling_for
from channel.graph.ratelimit import Grant
from channel.graph.transport import PooledTransport

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendResult:
    wamid: str | None = None
    error_code: int | None = None
    error_text: str = ""
    http_status: int | None = None
    handling: Handling | None = None
    maybe_sent: bool = False
    # Never handed to the transport: the batch was stopped before its slot (nothing reached Meta).
    not_sent: bool = False

    @property
    def ok(self) -> bool:
        return self.wamid is not None


def _background_loop() -> asyncio.AbstractEventLoop:
    """One event loop per process, in a daemon thread. The calling thread hands it whole
    batches, so a batch keeps sending while the caller settles the previous one in the
    database. After a fork (Celery prefork) the thread stayed in the parent: start another."""
    global _loop_state
    with _loop_lock:
        if _loop_state is None or _loop_state[0] != os.getpid():
            # A full collection walks Django's whole long-lived heap (~30 ms measured): no
            # send leaves meanwhile, then the late ones bunch up, and Meta counts arrivals.
            # What exists when a process starts sending lives as long as the process.
            gc.freeze()
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="graph-send", daemon=True).start()
            _loop_state = (os.getpid(), loop)
        return _loop_state[1]


_loop_lock = threading.Lock()
_loop_state: tuple[int, asyncio.AbstractEventLoop] | None = None


class GraphClient:
    """httpx.AsyncClient over channel.graph.transport (h11 for HTTP/1.1 under an O(1) pool;
    bench/http_clients.py has the numbers against httpcore's pool and aiohttp's under httpx).

    ``send`` is the blocking one-message call replies use; ``submit`` sends a batch
    concurrently, each message at a slot handed out by the rate limiter, and returns a
    future. Safe to share between threads: all I/O runs on the process's one event loop."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        version: str | None = None,
        phone_number_id: str | None = None,
        token: str | None = None,
        timeout: float | None = None,
        max_connections: int = 512,
    ) -> None:
        base_url = (base_url or settings.WHATSAPP_GRAPH_URL).rstrip("/")
        version = version or settings.WHATSAPP_API_VERSION
        phone_number_id = phone_number_id or settings.WHATSAPP_PHONE_NUMBER_ID
        self.messages_url = f"{base_url}/{version}/{phone_number_id}/messages"
        read_timeout = timeout or settings.BANDITORE_HTTP_TIMEOUT
        self.timeout = float(read_timeout)
        self._loop = _background_loop()
        self._pid = os.getpid()
        self.slots_given_up = 0  # see LATE
        self._http = httpx.AsyncClient(
            headers={
                "Authorization": f"Bearer {token or settings.WHATSAPP_ACCESS_TOKEN}",
                "Content-Type": "application/json",
            },
            timeout=httpx.Timeout(read_timeout, connect=5.0, pool=read_timeout),
            transport=PooledTransport(max_connections=max_connections),
        )

    def close(self) -> None:
        if self._pid == os.getpid() and self._loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._http.aclose(), self._loop).result(5)

    def send(self, payload: dict) -> SendResult:
        future = asyncio.run_coroutine_threadsafe(self.asend(payload), self._loop)
        return future.result(self.timeout + 30)

    def submit(
        self,
        payloads: list[dict],
        reserve: Callable[[int], Grant] | None = None,
        chunk: int = 1,
        stop: Callable[[], bool] | None = None,
        answered: Callable[[int, SendResult | None], None] | None = None,
    ) -> Future[list[SendResult]]:
        """Send all, concurrently; with `reserve` (the limiter), message n waits for its slot.
        `stop` is asked right before each request is handed to the transport (so it must be
        cheap); once it says True, the rest is not sent (`not_sent` results). The future's
        results come in the order of `payloads`.

        `answered(n, result)` is called on the event loop as each request ends (so it must be
        quick and thread-safe), not-sent ones included, then `answered(-1, None)` once every
        request was handed to the transport or given up: a caller can write back what is
        answered while a request that got no answer yet waits for its own timeout."""
        return asyncio.run_coroutine_threadsafe(
            self._send_paced(payloads, reserve, chunk, stop, answered), self._loop
        )

    def send_paced(
        self,
        payloads: list[dict],
        reserve: Callable[[int], Grant] | None = None,
        chunk: int = 1,
        stop: Callable[[], bool] | None = None,
    ) -> list[SendResult]:
        return self.submit(payloads, reserve, chunk, stop).result()

    # A send more than this past its slot is not sent at that slot: the process was held up
    # (CPU, a slow Redis answer), and firing its overdue slots now would bunch them with the
    # other processes' on-time ones. Slots that passed meanwhile stay unused and the message
    # takes a later one: a little throughput lost instead of a burst above Meta's limit.
    LATE = 0.01

    async def _send_paced(  # noqa: C901  (one loop: slots, stop, hand-over)
        self, payloads, reserve, chunk: int, stop, answered=None
    ) -> list[SendResult]:
        loop = asyncio.get_running_loop()
        tasks = []
        stopped = stop or (lambda: False)

        def start(payload: dict) -> None:
            task = loop.create_task(self.asend(payload))
            if answered is not None:
                n = len(tasks)
                task.add_done_callback(lambda t: t.cancelled() or answered(n, t.result()))
            tasks.append(task)

        while len(tasks) < len(payloads) and not stopped():
            if reserve is None:
                for payload in payloads:
                    start(payload)
                break
            asked_at = loop.time()
            grant = reserve(min(chunk, len(payloads) - len(tasks)))
            granted_at = loop.time()  # Redis's "now" lies between the two
            if not grant.count:
                await asyncio.sleep(grant.first)
                continue
            for n in range(grant.count):
                # Sleep to each slot rather than firing the chunk at once: Meta counts
                # arrivals, and a chunk sent together is a burst. Never early (granted_at),
                # never late (asked_at).
                delay = granted_at + grant.slot(n) - loop.time()
                if delay > 0.0005:
                    await asyncio.sleep(delay)
                if loop.time() - (asked_at + grant.slot(n)) > self.LATE:
                    self.slots_given_up += 1
                    continue
                if stopped():  # its slot is given up like a late one
                    break
                start(payloads[len(tasks)])
        if answered is not None:
            for n in range(len(tasks), len(payloads)):
                answered(n, _NOT_SENT)
            answered(-1, None)
        results = list(await asyncio.gather(*tasks))
        return results + [_NOT_SENT] * (len(payloads) - len(results))

    async def asend(self, payload: dict) -> SendResult:
        try:
            response = await self._http.post(self.messages_url, json=payload)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Nothing reached Meta: safe to retry.
            return SendResult(error_text=f"connection failed: {exc}", handling=Handling.TRANSIENT)
        except Exception as exc:
            # The request was (or may have been) written; Meta may have accepted it.
            if not isinstance(exc, httpx.HTTPError):
                logger.exception("unexpected error while sending")
            return SendResult(
                error_text=f"no answer: {type(exc).__name__}",
                handling=Handling.TRANSIENT,
                maybe_sent=True,
            )
        return _result_from_response(response)


_NOT_SENT = SendResult(error_text="not sent: stopped before its turn", not_sent=True)


def _result_from_response(response: httpx.Response) -> SendResult:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success and isinstance(body, dict):
        messages = body.get("messages")
        if isinstance(messages, list) and messages and isinstance(messages[0], dict):
            wamid = messages[0].get("id")
            if isinstance(wamid, str) and wamid:
                return SendResult(wamid=wamid, http_status=response.status_code)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), int):
        details = (
            (error.get("error_data") or {}).get("details", "")
            if isinstance(error.get("error_data"), dict)
            else ""
        )
        text = " — ".join(part for part in (str(error.get("message", "")), details) if part)
        return SendResult(
            error_code=error["code"],
            error_text=text[:1000],
            http_status=response.status_code,
            handling=handling_for(error["code"], response.status_code),
        )
    return SendResult(
        error_text=f"HTTP {response.status_code}: {response.text[:200]}",
        http_status=response.status_code,
        handling=handling_for(None, response.status_code),
        # A 2xx we cannot read may still have been accepted.
        maybe_sent=response.is_success,
    )


_lock = threading.Lock()
_clients: dict[tuple, GraphClient] = {}


def get_client() -> GraphClient:
    """The process's client (thread-safe); rebuilt when settings change, as in tests."""
    key = (
        os.getpid(),
        settings.WHATSAPP_GRAPH_URL,
        settings.WHATSAPP_API_VERSION,
        settings.WHATSAPP_PHONE_NUMBER_ID,
        settings.WHATSAPP_ACCESS_TOKEN,
    )
    with _lock:
        client = _clients.get(key)
        if client is None:
            stale = list(_clients.values())
            _clients.clear()
            client = _clients[key] = GraphClient()
        else:
            stale = []
    for old in stale:
        old.close()
    return client
