"""A fake WhatsApp Cloud API: a real HTTP/1.1 server on loopback that answers like Meta.

asyncio, so simulated latency costs no CPU and one thread holds hundreds of keep-alive
connections. Control endpoints live under ``/_fake/``; everything else is Meta's surface.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import hashlib
import json
import random
import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import asdict, dataclass, field, fields, replace
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from channel.fakegraph.media_rules import Upload, media_ids, validate_upload
from channel.fakegraph.openapi import prepare as prepare_spec
from channel.fakegraph.validation import Rejection, Template, validate_message
from channel.graph.transport import PooledTransport
from channel.webhook.envelope import webhook_body, webhook_envelope
from channel.webhook.signatures import HEADER, sign

DAY = 86400.0
# Calling codes → ISO country letters, for the business-scoped user ids the fake makes up.
_COUNTRIES = (("39", "IT"), ("44", "GB"), ("49", "DE"), ("33", "FR"), ("34", "ES"), ("1", "US"))

_TITLES = {
    0: "AuthException",
    2: "Service temporarily unavailable",
    190: "Access token has expired",
    131000: "Something went wrong",
    130429: "Rate limit hit",
    131026: "Message undeliverable",
    131047: "Re-engagement message",
    131049: "This message was not delivered to maintain healthy ecosystem engagement.",
    131050: "Unable to deliver the message. This recipient has chosen to stop receiving "
    "marketing messages on WhatsApp from your business",
    131056: "(Business Account, Consumer Account) pair rate limit hit",
    130472: "User's number is part of an experiment",
    131048: "Spam rate limit hit",
    131031: "Account has been locked",
    368: "Temporarily blocked for policies violations",
}


def _pricing(template_category: str, in_window: bool) -> dict:
    """Meta's `pricing` object for a message (https://developers.facebook.com/docs/whatsapp/
    pricing): per-message pricing (PMP) bills delivered marketing, utility and authentication
    templates; free-form messages, and utility templates, inside the 24-hour window are free
    customer service (category `service` for free-form)."""
    if template_category and not (template_category == "utility" and in_window):
        return {
            "billable": True,
            "pricing_model": "PMP",
            "category": template_category,
            "type": "regular",
        }
    return {
        "billable": False,
        "pricing_model": "PMP",
        "category": template_category or "service",
        "type": "free_customer_service",
    }


@dataclass
class FakeConfig:
    access_token: str = "test-access-token"
    app_secret: str = "test-app-secret"
    phone_number_id: str = "100000000000001"
    waba_id: str = "100000000000002"  # the WhatsApp Business Account: its message_templates
    display_phone_number: str = "390000000000"
    webhook_url: str = ""
    # Messages per second before 130429, Meta's default for a number; 0 = no limit (benchmarks
    # of our own CPU). https://developers.facebook.com/documentation/business-messaging/whatsapp/throughput
    mps: float = 80
    pair_burst: int = 45  # Meta: bursts up to 45 in 6 s to one person (about-the-platform)
    pair_period: float = 6.0
    enforce_window: bool = True
    tier: int | None = None  # unique people outside the window per 24 h; None = unlimited
    unreachable: list[str] = field(default_factory=list)
    marketing_opted_out: list[str] = field(default_factory=list)
    token_expired: bool = False
    latency_ms: float = 0
    error_5xx_rate: float = 0.0
    timeout_rate: float = 0.0
    drop_rate: float = 0.0
    fault_after_accept_rate: float = 0.5  # share of timeouts/drops where Meta kept the message
    hang_seconds: float = 30.0
    # Sends to these numbers get no answer for hang_seconds, then a dropped connection, and are
    # not accepted: one known slow request in a batch, whatever the random faults do.
    hang_to: list[str] = field(default_factory=list)
    error_130429_rate: float = 0.0
    error_131056_rate: float = 0.0
    seed: int | None = None
    statuses: bool = True
    status_batch_size: int = 20
    status_delay_ms: float = 20
    status_concurrency: int = 4
    status_shuffle: bool = False
    status_duplicate_rate: float = 0.0
    delivered_rate: float = 1.0
    read_rate: float = 0.0  # share of delivered messages then read (Meta sends `read` too)
    # Share of read messages whose `delivered` never comes: Meta does not promise one before
    # `read` (https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components).
    read_without_delivered_rate: float = 0.0
    fail_after_send: list[str] = field(default_factory=list)  # accepted, then failed 131026
    # Uploaded media live this long (Meta: 30 days), then sends by their id fail with 131053.
    media_ttl: float = 30 * DAY
    # The phone number's facts, as GET /{phone-number-id}?fields=… answers them
    # (https://developers.facebook.com/docs/whatsapp/cloud-api/reference/phone-numbers and
    # https://developers.facebook.com/documentation/business-messaging/whatsapp/throughput).
    throughput_level: str = "STANDARD"  # STANDARD (80/s) or HIGH (1,000/s)
    messaging_limit: str = "TIER_2K"  # TIER_250, TIER_2K, TIER_10K, TIER_100K, TIER_UNLIMITED
    quality_rating: str = "GREEN"  # GREEN, YELLOW, RED, UNKNOWN
    name_status: str = "APPROVED"
    fail_after_send_code: int = 131026  # the code of those failures (e.g. 131048, 130472)
    # Sends to these numbers are refused at once with this code (any of Meta's, or one unknown).
    error_for: dict[str, int] = field(default_factory=dict)


class _State:
    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        self.random = random.Random(config.seed)
        self.templates: dict[tuple[str, str], Template] = {}
        self.next_template_id = 1_000_000_000_000_001  # Meta's template ids: long digit strings
        self.outbox: list[dict] = []
        self.media: dict[str, tuple[Upload, float]] = {}  # media id → (upload, expires at)
        self.uploads = 0
        self.inbound_at: dict[str, float] = {}
        self.recent_accepts: deque[float] = deque()
        self.accept_times: list[float] = []
        self.pair_times: dict[str, deque[float]] = defaultdict(deque)
        self.tier_reached: dict[str, float] = {}
        self.rejected: dict[int, int] = defaultdict(int)
        self.faults: dict[str, int] = defaultdict(int)
        self.webhooks_sent = 0
        self.webhook_failures = 0
        self.statuses_sent = 0
        self.user_ids: dict[str, str] = {}  # number → business-scoped user id
        self.numbers: dict[str, str] = {}  # and back


class FakeGraphServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, config: FakeConfig | None = None):
        self.host, self.port = host, port
        self._initial = config or FakeConfig()
        self.state = _State(FakeConfig(**asdict(self._initial)))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._ready = threading.Event()
        self._statuses: asyncio.Queue | None = None
        self._pending = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeGraphServer:
        self._thread = threading.Thread(target=self._run, name="fakegraph", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake Graph API did not start")
        return self

    def serve_forever(self) -> None:
        self._run()

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._statuses = asyncio.Queue()
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._connection, self.host, self.port, backlog=1024)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        # Our lean transport: httpcore's pool would make the fake, Meta's stand-in, the busiest
        # process on the machine when it posts one status per webhook.
        self._http = httpx.AsyncClient(timeout=10, transport=PooledTransport(max_connections=16))
        self._emitter = self._loop.create_task(self._emit_statuses())
        prepare_spec()  # 2 s once: not inside the first request, which would time out
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    async def _shutdown(self) -> None:
        self._emitter.cancel()
        self._server.close()
        with contextlib.suppress(Exception):
            await self._http.aclose()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        if others:
            await asyncio.wait(others, timeout=2)
        asyncio.get_running_loop().stop()

    # --- HTTP plumbing -----------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    break
                method, target, _version = request_line.decode("latin-1").split(" ", 2)
                headers = {}
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                body = await reader.readexactly(length) if length else b""
                answer = await self._dispatch(method, target, headers, body)
                if answer is None:  # simulated fault: no answer at all
                    break
                status, payload = answer
                data = json.dumps(payload).encode()
                writer.write(
                    f"HTTP/1.1 {status} {'OK' if status < 400 else 'Error'}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                    "Connection: keep-alive\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _dispatch(self, method: str, target: str, headers: dict, body: bytes):
        parts = urlsplit(target)
        path = parts.path.rstrip("/")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            data = None
        if path.startswith("/_fake/"):
            return await self._control(method, path[len("/_fake/") :], query, data)
        segments = path.strip("/").split("/")
        if len(segments) == 3 and segments[2] == "message_templates":
            return self._message_templates(method, path, headers, query)
        if method == "POST" and len(segments) == 3 and segments[2] == "media":
            return self._upload(segments[1], headers, body)
        if method == "GET" and len(segments) == 2:
            return self._phone_number(segments[1], headers, query)
        if method == "POST" and len(segments) == 3 and segments[2] == "messages":
            if segments[1] != self.state.config.phone_number_id:
                return 400, _error(100, "Unsupported post request: unknown phone number id.")
            return await self._send(headers, data)
        return 404, _error(100, f"Unknown path components: {path}")

    # --- Meta's template listing ------------------------------------------------------------

    # Fields Meta returns when the request names none (the OpenAPI document's example).
    TEMPLATE_DEFAULT_FIELDS = ("name", "components", "language", "status", "category", "id")

    def _message_templates(self, method: str, path: str, headers: dict, query: dict):
        """GET (paged by cursor: `limit`, `after`; `fields`) and DELETE (`name`, optionally
        `hsm_id`) of /{waba-id}/message_templates, as Meta answers them
        (https://developers.facebook.com/docs/whatsapp/business-management-api/message-templates)."""
        state, waba_id = self.state, path.strip("/").split("/")[1]
        if headers.get("authorization", "") != f"Bearer {state.config.access_token}":
            return 401, _error(190, "Invalid OAuth access token - Cannot parse access token")
        if waba_id != state.config.waba_id:
            return 400, _error(100, f"Unsupported request. Object with ID '{waba_id}' not found.")
        if method == "DELETE":
            name, hsm_id = query.get("name", ""), query.get("hsm_id", "")
            gone = [
                key for key, t in state.templates.items() if t.name == name and hsm_id in ("", t.id)
            ]
            if not name or not gone:
                return 400, _error(100, "Message template not found.")
            for key in gone:
                del state.templates[key]
            return 200, {"success": True}
        if method != "GET":
            return 400, _error(100, f"Unsupported {method.lower()} request.")
        try:
            limit = min(max(int(query.get("limit", 25)), 1), 1000)
            start = _cursor_offset(query["after"]) if query.get("after") else 0
        except ValueError:
            return 400, _error(100, "Invalid parameter: limit or after.")
        wanted = [f.strip() for f in query.get("fields", "").split(",") if f.strip()]
        listed = list(state.templates.values())
        fields_ = wanted or self.TEMPLATE_DEFAULT_FIELDS
        page = [_template_listing(t, fields_) for t in listed[start : start + limit]]
        answer: dict = {"data": page}
        if page:
            end = start + len(page)
            answer["paging"] = {"cursors": {"before": _cursor(start), "after": _cursor(end)}}
            if end < len(listed):  # Meta leaves `next` out on the last page
                following = urlencode({**query, "after": _cursor(end)})
                answer["paging"]["next"] = f"{self.url}{path}?{following}"
        return 200, answer

    # --- Meta's media upload and phone number endpoints ---------------------------------------

    def _upload(self, phone_id: str, headers: dict, body: bytes):
        """POST /{phone-number-id}/media (multipart): Meta's type and size checks, then an id
        that lives `media_ttl` seconds
        (https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media#upload-media)."""
        state = self.state
        if headers.get("authorization", "") != f"Bearer {state.config.access_token}":
            return 401, _error(190, "Invalid OAuth access token - Cannot parse access token")
        if phone_id != state.config.phone_number_id:
            return 400, _error(100, "Unsupported post request: unknown phone number id.")
        upload = validate_upload(headers.get("content-type", ""), body)
        if isinstance(upload, Rejection):
            return self._reject(upload.code, upload.details)
        media_id = str(secrets.randbelow(9 * 10**15) + 10**15)  # Meta's: 16 digits
        state.media[media_id] = (upload, time.time() + state.config.media_ttl)
        state.uploads += 1
        return 200, {"id": media_id}

    def _media_rejection(self, payload) -> tuple[int, dict] | None:
        """Meta cannot send a media id it does not hold (never uploaded, or expired), nor an
        image id as a video: 131053."""
        now = time.time()
        for kind, media_id in media_ids(payload):
            known = self.state.media.get(media_id)
            if known is None or known[1] <= now:
                return self._reject(131053, f"Media upload error: media id {media_id} not found.")
            if kind != "document" and known[0].kind != kind:
                return self._reject(
                    131053, f"Media upload error: media {media_id} is a {known[0].mime_type}."
                )
        return None

    # Fields Meta answers when none are asked for (the OpenAPI document's default set).
    PHONE_DEFAULT_FIELDS = ("id", "display_phone_number", "verified_name", "quality_rating")

    def _phone_number(self, phone_id: str, headers: dict, query: dict):
        """GET /{phone-number-id}?fields=…: the number's throughput, messaging limit, quality
        rating and display name status, as configured (tests lower them)."""
        config = self.state.config
        if headers.get("authorization", "") != f"Bearer {config.access_token}":
            return 401, _error(190, "Invalid OAuth access token - Cannot parse access token")
        if phone_id != config.phone_number_id:
            return 400, _error(
                100, f"Unsupported get request. Object with ID '{phone_id}' not found."
            )
        known = {
            "id": config.phone_number_id,
            "display_phone_number": config.display_phone_number,
            "verified_name": "Comune di Esempio",
            "quality_rating": config.quality_rating,
            "name_status": config.name_status,
            "throughput": {"level": config.throughput_level},
            "whatsapp_business_manager_messaging_limit": config.messaging_limit,
            "messaging_limit_tier": config.messaging_limit,  # deprecated by Meta, still served
            "status": "CONNECTED",
        }
        wanted = [f.strip() for f in query.get("fields", "").split(",") if f.strip()]
        unknown = [f for f in wanted if f not in known]
        if unknown:
            return 400, _error(100, f"(#100) Tried accessing nonexisting field ({unknown[0]})")
        return 200, {
            f: known[f] for f in ([*wanted, "id"] if wanted else self.PHONE_DEFAULT_FIELDS)
        }

    # --- Meta's send endpoint ----------------------------------------------------------------

    async def _send(self, headers: dict, payload):
        state, config = self.state, self.state.config
        auth = headers.get("authorization", "")
        if auth != f"Bearer {config.access_token}":
            return 401, _error(190, "Invalid OAuth access token - Cannot parse access token")
        if config.token_expired:
            return 401, _error(190, "Error validating access token: Session has expired.")
        if config.latency_ms:
            await asyncio.sleep(config.latency_ms / 1000)
        if config.hang_to and isinstance(payload, dict):
            to = str(payload.get("to") or payload.get("recipient") or "").lstrip("+")
            if to in config.hang_to:
                state.faults["hang"] += 1
                await asyncio.sleep(config.hang_seconds)
                return None
        roll = state.random.random()
        if roll < config.error_5xx_rate:
            state.faults["5xx"] += 1
            return 500, _error(131000, "Something went wrong")
        roll -= config.error_5xx_rate
        if roll < config.timeout_rate + config.drop_rate:
            is_timeout = roll < config.timeout_rate
            state.faults["timeout" if is_timeout else "drop"] += 1
            if state.random.random() < config.fault_after_accept_rate:
                self._try_accept(payload)
            if is_timeout:
                await asyncio.sleep(config.hang_seconds)
            return None
        roll -= config.timeout_rate + config.drop_rate
        if roll < config.error_130429_rate:
            return self._reject(130429, "Cloud API message throughput has been reached.", 400)
        roll -= config.error_130429_rate
        if roll < config.error_131056_rate:
            return self._reject(131056, "Too many messages to this user in a short time.", 400)
        return self._try_accept(payload)

    def _reject(self, code: int, details: str, status: int = 400):
        self.state.rejected[code] += 1
        return status, _error(code, details)

    def _try_accept(self, payload):  # noqa: C901  (Meta's checks, in order)
        state, config = self.state, self.state.config
        rejection = validate_message(payload, state.templates)
        if rejection is not None:
            return self._reject(rejection.code, rejection.details)
        refused = self._media_rejection(payload)
        if refused is not None:
            return refused
        now = time.time()
        if config.mps:
            while state.recent_accepts and state.recent_accepts[0] <= now - 1.0:
                state.recent_accepts.popleft()
            if len(state.recent_accepts) >= config.mps:
                return self._reject(130429, "Cloud API message throughput has been reached.")
        to = payload.get("to") or payload.get("recipient")
        to = self._phone_of(to.lstrip("+"))  # a business-scoped id we know the number of
        if to in config.unreachable:
            return self._reject(131026, "Message undeliverable.")
        if to in config.error_for:
            return self._reject(config.error_for[to], "Refused as configured (error_for).")
        is_template = payload.get("type") == "template"
        in_window = now - state.inbound_at.get(to, -DAY * 2) < DAY
        if not is_template and config.enforce_window and not in_window:
            return self._reject(131047, "More than 24 hours have passed since the user replied.")
        template = None
        if is_template:
            body = payload["template"]
            template = state.templates[(body["name"], body["language"]["code"])]
            if template.category == "marketing" and to in config.marketing_opted_out:
                return self._reject(131050, "The user stopped marketing messages.")
        sends = state.pair_times[to]
        while sends and sends[0] <= now - config.pair_period:
            sends.popleft()
        if len(sends) >= config.pair_burst:
            return self._reject(131056, "Too many messages to this user in a short time.")
        sends.append(now)
        over_tier = False
        if not in_window and config.tier is not None:
            for key, at in list(state.tier_reached.items()):
                if at <= now - DAY:
                    del state.tier_reached[key]
            if to not in state.tier_reached:
                if len(state.tier_reached) >= config.tier:
                    over_tier = True
                else:
                    state.tier_reached[to] = now
        wamid = "wamid.HBgL" + secrets.token_urlsafe(24)
        state.recent_accepts.append(now)
        state.accept_times.append(time.monotonic())
        entry = {
            "seq": len(state.outbox) + 1,
            "id": wamid,
            "to": to,
            "recipient": payload.get("recipient", ""),
            "payload": payload,
            "callback": payload.get("biz_opaque_callback_data", ""),
            "category": template.category if template else "service",
            "pricing": _pricing(template.category if template else "", in_window),
            "at": now,
        }
        state.outbox.append(entry)
        self._queue_statuses(entry, over_tier)
        return 200, {
            "messaging_product": "whatsapp",
            "contacts": [self._contact(payload.get("to") or payload["recipient"], to)],
            "messages": [{"id": wamid, "message_status": "accepted"}],
        }

    # --- business-scoped user ids (https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids)

    def _user_id_for(self, who: str) -> str:
        """The person's business-scoped user id: as given, learnt from an inbound message, or
        made up once per number (country letters, ".", digits), as Meta assigns one to all."""
        if not who.isdigit():
            return who
        known = self.state.user_ids.get(who)
        if known is None:
            country = next((c for p, c in _COUNTRIES if who.startswith(p)), "US")
            digits = int.from_bytes(hashlib.sha256(who.encode()).digest()[:8], "big")
            known = f"{country}.{digits:020d}"
            self.state.user_ids[who], self.state.numbers[known] = known, who
        return known

    def _phone_of(self, who: str) -> str:
        """The number behind a business-scoped id when the fake knows it, else `who`."""
        if who.isdigit():
            return who
        return self.state.numbers.get(who, who)

    def _contact(self, given: str, who: str) -> dict:
        """`contacts[]` of a send's answer: what was sent to (`input`), the number when known,
        always the user id (a send by `recipient` is answered with it)."""
        contact = {"input": given}
        if who.isdigit():
            contact["wa_id"] = who
        return contact | {"user_id": self._user_id_for(who)}

    # --- status webhooks ---------------------------------------------------------------------

    def _queue_statuses(self, entry: dict, over_tier: bool) -> None:
        config = self.state.config
        if not (config.statuses and config.webhook_url):
            return
        # Meta names the person by number when it has one and always by business-scoped id
        # (a `failed` of a send to a number omits the id).
        base = {"id": entry["id"]}
        if entry["to"].isdigit():
            base["recipient_id"] = entry["to"]
        base["recipient_user_id"] = self._user_id_for(entry["to"])
        if entry["callback"]:
            base["biz_opaque_callback_data"] = entry["callback"]
        stamp = str(int(entry["at"]))
        pricing = entry["pricing"]
        updates = [{**base, "status": "sent", "timestamp": stamp, "pricing": pricing}]
        failure = None
        if (
            over_tier
        ):  # Meta has no dedicated code for the tier (messaging-limits page): it stops delivering
            failure = 131049
        elif entry["to"] in config.fail_after_send:
            failure = config.fail_after_send_code
        if failure:
            title = _TITLES.get(failure, "Error")
            error = {"code": failure, "title": title, "message": title}
            error["error_data"] = {"details": title}
            failed = {**base, "status": "failed", "timestamp": stamp, "errors": [error]}
            if entry["to"].isdigit():
                del failed["recipient_user_id"]
            updates.append(failed)
        else:
            if self.state.random.random() < config.delivered_rate:
                read = self.state.random.random() < config.read_rate
                unseen = read and self.state.random.random() < config.read_without_delivered_rate
                # Meta repeats `pricing` on one of delivered/read, never both.
                if not unseen:
                    updates.append(
                        {**base, "status": "delivered", "timestamp": stamp, "pricing": pricing}
                    )
                if read:
                    updates.append(
                        {**base, "status": "read", "timestamp": stamp}
                        | ({"pricing": pricing} if unseen else {})
                    )
        for update in updates:
            self._pending += 1
            self._statuses.put_nowait(update)

    async def _emit_statuses(self) -> None:
        """One collector forms batches; up to `status_concurrency` POSTs run at once."""
        slots = asyncio.Semaphore(max(1, self.state.config.status_concurrency))
        while True:
            first = await self._statuses.get()
            batch = [first]
            config = self.state.config
            deadline = time.monotonic() + config.status_delay_ms / 1000
            while len(batch) < config.status_batch_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._statuses.get(), remaining))
                except TimeoutError:
                    break
            await slots.acquire()
            task = asyncio.ensure_future(self._deliver_batch(batch))
            task.add_done_callback(lambda _task: slots.release())

    async def _deliver_batch(self, batch: list[dict]) -> None:
        config = self.state.config
        taken = len(batch)
        if config.status_shuffle:
            self.state.random.shuffle(batch)
        extra = [s for s in batch if self.state.random.random() < config.status_duplicate_rate]
        try:
            await self._post_webhook({"statuses": batch + extra})
            self.state.statuses_sent += len(batch) + len(extra)
        finally:
            self._pending -= taken

    async def _post_webhook(self, value: dict) -> int:
        config = self.state.config
        envelope = webhook_envelope(
            value,
            phone_number_id=config.phone_number_id,
            display_phone_number=config.display_phone_number,
            entry_id="102290129340398",
        )
        raw = webhook_body(envelope)  # Meta's bytes: \u00e8 and \/ escaped, signed as sent
        try:
            response = await self._http.post(
                config.webhook_url,
                content=raw,
                headers={
                    "Content-Type": "application/json",
                    HEADER: sign(raw, config.app_secret),
                },
            )
        except httpx.HTTPError:
            self.state.webhook_failures += 1
            return 0
        self.state.webhooks_sent += 1
        if response.status_code != 200:
            self.state.webhook_failures += 1
        return response.status_code

    # --- control endpoints -------------------------------------------------------------------

    async def _control(self, method: str, name: str, query: dict, data):  # noqa: C901
        state = self.state
        if name == "outbox":
            since = int(query.get("since", 0) or 0)
            to = query.get("to")
            items = [e for e in state.outbox[since:] if to is None or e["to"] == to.lstrip("+")]
            return 200, {"messages": items, "last_seq": len(state.outbox)}
        if name == "stats":
            return 200, self._stats()
        if name == "flush":
            deadline = time.monotonic() + float(query.get("timeout", 30))
            while self._pending > 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            return 200, {"pending": self._pending}
        if not isinstance(data, dict):
            return 400, _error(100, "control endpoints take a JSON object")
        if name == "config":
            known = {f.name for f in fields(FakeConfig)}
            unknown = sorted(set(data) - known)
            if unknown:
                return 400, _error(100, f"unknown options: {', '.join(unknown)}")
            for key, value in data.items():
                setattr(state.config, key, value)
            if "seed" in data:
                state.random.seed(data["seed"])
            return 200, asdict(state.config)
        if name == "reset":
            keep = {k: getattr(state.config, k) for k in ("webhook_url", "app_secret")}
            config = FakeConfig(**{**asdict(self._initial), **keep, **data})
            self.state = _State(config)
            return 200, asdict(config)
        if name == "templates":
            template = Template(**data)
            if not template.id:
                template = replace(template, id=str(state.next_template_id))
                state.next_template_id += 1
            state.templates[(template.name, template.language)] = template
            return 200, asdict(template)
        if name == "inbound":
            return 200, await self._inbound(data)
        if name == "forget_media":  # Meta no longer holds our uploads (expired, purged)
            forgotten = len(state.media)
            state.media.clear()
            return 200, {"forgotten": forgotten}
        return 404, _error(100, f"unknown control endpoint {name}")

    async def _inbound(self, data: dict) -> dict:
        """A person writes to the business: remember the time (24-h window) and tell the app."""
        sender = str(data.get("from", "")).lstrip("+")
        if isinstance(data.get("user_id"), str) and sender.isdigit():
            self.state.user_ids[sender] = data["user_id"]
            self.state.numbers[data["user_id"]] = sender
        user_id = self._user_id_for(sender)
        now = time.time()
        self.state.inbound_at[sender] = now
        self.state.inbound_at[user_id] = now
        message = data.get("message")
        if not isinstance(message, dict):
            message = {"id": "wamid.IN" + secrets.token_urlsafe(18), "from_user_id": user_id}
            if sender.isdigit():  # someone with a username may come without a number
                message["from"] = sender
            message["timestamp"] = str(int(now))
            if "list_reply_id" in data:
                message["type"] = "interactive"
                message["interactive"] = {
                    "type": "list_reply",
                    "list_reply": {"id": data["list_reply_id"], "title": data.get("title", "")},
                }
            elif "button_reply_id" in data:
                message["type"] = "interactive"
                message["interactive"] = {
                    "type": "button_reply",
                    "button_reply": {
                        "id": data["button_reply_id"],
                        "title": data.get("title", ""),
                    },
                }
            else:
                message["type"] = "text"
                message["text"] = {"body": str(data.get("text", ""))}
        value = {
            "contacts": [
                {"profile": {"name": data.get("name", "Test")}, "user_id": user_id}
                | ({"wa_id": sender} if sender.isdigit() else {})
            ],
            "messages": [message],
        }
        status = await self._post_webhook(value) if self.state.config.webhook_url else 0
        return {"wamid": message.get("id"), "webhook_status": status}

    def _stats(self) -> dict:
        state = self.state
        times = state.accept_times
        peak = 0
        for i, t in enumerate(times):  # highest count in any sliding 1-second window
            peak = max(peak, bisect.bisect_left(times, t + 1.0, lo=i) - i)
        return {
            "accepted": len(state.outbox),
            "rejected": {str(k): v for k, v in state.rejected.items()},
            "faults": dict(state.faults),
            "max_per_second": peak,
            "first_accept": times[0] if times else None,
            "last_accept": times[-1] if times else None,
            "webhooks_sent": state.webhooks_sent,
            "media_uploads": state.uploads,
            "webhook_failures": state.webhook_failures,
            "statuses_sent": state.statuses_sent,
            "pending_statuses": self._pending,
        }


def _cursor(offset: int) -> str:
    """An opaque cursor, base64 like Meta's (e.g. "MjQZD")."""
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _cursor_offset(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("bad cursor") from exc
    if not text.startswith("offset:") or not text[7:].isdigit():
        raise ValueError("bad cursor")
    return int(text[7:])


def _template_listing(template: Template, wanted) -> dict:
    """One template as GET /{waba-id}/message_templates lists it: Meta's upper-case status
    and category, its components, and only the fields asked for (id always)."""
    parts = template.parts()
    order = ("HEADER", "BODY", "FOOTER", "BUTTONS")
    full = {
        "id": template.id,
        "name": template.name,
        "language": template.language,
        "status": template.status.upper(),
        "category": template.category.upper(),
        "components": template.components or [parts[k] for k in order if k in parts],
        "parameter_format": template.parameter_format.upper(),
        "quality_score": {"score": template.quality_score, "date": int(time.time())},
    }
    if template.previous_category:
        full["previous_category"] = template.previous_category.upper()
    return {k: v for k, v in full.items() if k == "id" or k in wanted}


def _error(code: int, details: str) -> dict:
    title = _TITLES.get(code, "Error")
    return {
        "error": {
            "message": f"(#{code}) {title}",
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details},
            "fbtrace_id": "A" + secrets.token_urlsafe(16),
        }
    }


__all__ = ["FakeConfig", "FakeGraphServer", "Rejection", "Template"]
