"""Graph API calls that are not sends: a media upload, the phone number's facts.

Rare and small (a few a day), so one short synchronous httpx request each, with the access
token; httpx honours HTTPS_PROXY/NO_PROXY. Sends go through channel.graph.client instead, which
is built for thousands a second. Never raises for API or network trouble: a `GraphAnswer`
says what came back.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from django.conf import settings


@dataclass(frozen=True)
class GraphAnswer:
    status: int | None  # None: no answer (network error, timeout)
    body: dict
    error_code: int | None = None
    error_text: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300 and self.error_code is None


def graph_url(*parts: str) -> str:
    base = settings.WHATSAPP_GRAPH_URL.rstrip("/")
    return "/".join([base, settings.WHATSAPP_API_VERSION, *parts])


def graph_request(method: str, url: str, *, timeout: float | None = None, **kwargs) -> GraphAnswer:
    """One request with the access token; `kwargs` go to httpx (params, data, files…)."""
    headers = {"Authorization": f"Bearer {settings.WHATSAPP_ACCESS_TOKEN}"}
    try:
        response = httpx.request(
            method,
            url,
            headers=headers,
            timeout=timeout or float(settings.BANDITORE_HTTP_TIMEOUT),
            **kwargs,
        )
    except httpx.HTTPError as exc:
        return GraphAnswer(None, {}, error_text=f"no answer: {type(exc).__name__}: {exc}"[:500])
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    error = body.get("error")
    if isinstance(error, dict):
        details = error.get("error_data")
        details = details.get("details", "") if isinstance(details, dict) else ""
        text = " — ".join(str(p) for p in (error.get("message", ""), details) if p)
        code = error.get("code") if isinstance(error.get("code"), int) else 0
        return GraphAnswer(response.status_code, body, code, text[:1000])
    if not response.is_success:
        return GraphAnswer(response.status_code, body, None, f"HTTP {response.status_code}")
    return GraphAnswer(response.status_code, body)
