"""`manage.py fakegraph --port 8765`: run the fake WhatsApp Cloud API in the foreground."""

from __future__ import annotations

import re
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import DatabaseError

from channel.fakegraph.server import FakeConfig, FakeGraphServer
from channel.fakegraph.validation import Template
from channel.models import MessageTemplate


class Command(BaseCommand):
    help = "Run the fake WhatsApp Cloud API (never calls Meta)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument(
            "--webhook-url",
            default=f"{settings.SITE_URL.rstrip('/')}/whatsapp/webhook/",
            help="Where status and inbound webhooks go (default: this site's webhook).",
        )
        parser.add_argument("--latency-ms", type=float, default=0)
        parser.add_argument("--mps", type=float, default=0, help="0 = no throughput limit")
        parser.add_argument(
            "--no-window", action="store_true", help="Do not enforce the 24-hour window."
        )

    def handle(self, *args, **options) -> None:
        config = FakeConfig(
            access_token=settings.WHATSAPP_ACCESS_TOKEN,
            app_secret=settings.WHATSAPP_APP_SECRET,
            phone_number_id=settings.WHATSAPP_PHONE_NUMBER_ID,
            webhook_url=options["webhook_url"],
            latency_ms=options["latency_ms"],
            mps=options["mps"],
            enforce_window=not options["no_window"],
        )
        server = FakeGraphServer(options["host"], options["port"], config).start()
        self.stdout.write(f"Fake WhatsApp Cloud API on {server.url}")
        try:
            while True:  # "Meta" approves what the council registers in the admin (dev only)
                mirror_templates(server)
                time.sleep(5)
        except KeyboardInterrupt:
            server.stop()


def mirror_templates(server: FakeGraphServer) -> None:
    try:
        rows = list(MessageTemplate.objects.all())
    except DatabaseError:  # not migrated yet
        return
    for row in rows:
        server.state.templates[(row.name, row.language)] = Template(
            name=row.name,
            language=row.language,
            category=row.category,
            body_params=len(set(re.findall(r"{{\s*(\d+)\s*}}", row.body_text))),
            header={"text": "text", "media": "image"}.get(row.header, ""),
            status=row.status,
        )
