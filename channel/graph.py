"""The one WhatsApp Cloud API client: POST /{version}/{phone_number_id}/messages.

It never raises for API or network trouble: every outcome is a ``SendResult`` whose
``handling`` says what to do (channel.errors). A request that may have reached Meta but got no
answer (read timeout, dropped connection) is ``maybe_sent``: callers must not resend it blindly.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import httpx
from django.conf import settings

from channel.errors import Handling, handling_for


@dataclass(frozen=True)
class SendResult:
    wamid: str | None = None
    error_code: int | None = None
    error_text: str = ""
    http_status: int | None = None
    handling: Handling | None = None
    maybe_sent: bool = False

    @property
    def ok(self) -> bool:
        return self.wamid is not None


class GraphClient:
    def __init__(
        self,
        *,
        base_url: str | None = None,
        version: str | None = None,
        phone_number_id: str | None = None,
        token: str | None = None,
        timeout: float | None = None,
    ) -> None:
        base_url = (base_url or settings.WHATSAPP_GRAPH_URL).rstrip("/")
        version = version or settings.WHATSAPP_API_VERSION
        phone_number_id = phone_number_id or settings.WHATSAPP_PHONE_NUMBER_ID
        self.messages_url = f"{base_url}/{version}/{phone_number_id}/messages"
        read_timeout = timeout or getattr(settings, "WHATSAPP_HTTP_TIMEOUT", 15.0)
        self._http = httpx.Client(
            headers={
                "Authorization": f"Bearer {token or settings.WHATSAPP_ACCESS_TOKEN}",
                "Content-Type": "application/json",
            },
            timeout=httpx.Timeout(read_timeout, connect=5.0),
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=4),
        )

    def close(self) -> None:
        self._http.close()

    def send(self, payload: dict) -> SendResult:
        try:
            response = self._http.post(self.messages_url, json=payload)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Nothing reached Meta: safe to retry.
            return SendResult(error_text=f"connection failed: {exc}", handling=Handling.TRANSIENT)
        except httpx.HTTPError as exc:
            # The request was written; Meta may have accepted it.
            return SendResult(
                error_text=f"no answer: {type(exc).__name__}",
                handling=Handling.TRANSIENT,
                maybe_sent=True,
            )
        return _result_from_response(response)


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


_local = threading.local()


def get_client() -> GraphClient:
    """One client per thread (httpx.Client pools are cheap; sharing one across threads makes
    its pool the bottleneck). Rebuilt when settings change, as in tests."""
    key = (
        settings.WHATSAPP_GRAPH_URL,
        settings.WHATSAPP_API_VERSION,
        settings.WHATSAPP_PHONE_NUMBER_ID,
        settings.WHATSAPP_ACCESS_TOKEN,
    )
    client = getattr(_local, "client", None)
    if client is None or _local.key != key:
        if client is not None:
            client.close()
        client = _local.client = GraphClient()
        _local.key = key
    return client
