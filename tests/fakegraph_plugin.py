"""The `fake_graph` fixture: the fake WhatsApp Cloud API on a free loopback port.

Tests talk to it only over HTTP, like the product does, so assertions are about what reached
"Meta" (its outbox), never about mocks inside the process.
"""

from __future__ import annotations

import httpx
import pytest

from channel.fakegraph.server import FakeConfig, FakeGraphServer


class FakeGraphControl:
    def __init__(self, url: str) -> None:
        self.url = url
        self._http = httpx.Client(base_url=f"{url}/_fake", timeout=60)

    def _post(self, name: str, data: dict) -> dict:
        response = self._http.post(f"/{name}", json=data)
        response.raise_for_status()
        return response.json()

    def outbox(self, to: str | None = None, since: int = 0) -> list[dict]:
        params = {"since": since} | ({"to": to} if to else {})
        return self._http.get("/outbox", params=params).json()["messages"]

    def configure(self, **options) -> dict:
        return self._post("config", options)

    def reset(self, **options) -> dict:
        return self._post("reset", options)

    def register_template(
        self,
        name: str,
        language: str = "it",
        category: str = "utility",
        body_params: int = 0,
        header: str = "",
        status: str = "approved",
    ) -> dict:
        return self._post(
            "templates",
            {
                "name": name,
                "language": language,
                "category": category,
                "body_params": body_params,
                "header": header,
                "status": status,
            },
        )

    def register_meta_template(self, **fields) -> dict:
        """A template as Meta holds it: name, language, category, status, components,
        parameter_format, quality_score, previous_category (channel.fakegraph.validation)."""
        return self._post("templates", fields)

    def mark_inbound(self, wa_id: str, **message) -> dict:
        """A person writes to us (opens their 24-hour window). Also sent to the app's webhook
        when a webhook URL is configured."""
        return self._post("inbound", {"from": wa_id, **message})

    def stats(self) -> dict:
        return self._http.get("/stats").json()

    def flush_statuses(self, timeout: float = 30) -> dict:
        return self._http.post("/flush", params={"timeout": timeout}).json()

    def close(self) -> None:
        self._http.close()


@pytest.fixture(scope="session")
def _fake_graph_server():
    server = FakeGraphServer(config=FakeConfig()).start()
    yield server
    server.stop()


@pytest.fixture
def fake_graph(_fake_graph_server, settings):
    """A fresh fake Graph API; settings point the product at it (no webhook URL by default:
    tests that want status webhooks set one with `configure(webhook_url=...)`)."""
    control = FakeGraphControl(_fake_graph_server.url)
    control.reset(
        access_token=settings.WHATSAPP_ACCESS_TOKEN,
        app_secret=settings.WHATSAPP_APP_SECRET,
        phone_number_id=settings.WHATSAPP_PHONE_NUMBER_ID,
        webhook_url="",
    )
    settings.WHATSAPP_GRAPH_URL = _fake_graph_server.url
    yield control
    control.close()
