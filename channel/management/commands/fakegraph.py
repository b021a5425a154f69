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
        parser.add_argument(
            "--mps", type=float, default=80, help="Meta's default 80/s; 0 = no throughput limit"
        )
        parser.add_argument(
            "--no-window", action="store_true", help="Do not enforce the 24-hour window."
        )

    def handle(self, *args, **options) -> None:
        config = FakeConfig(
            access_token=settings.WHATSAPP_ACCESS_TOKEN,
            app_secret=settings.WHATSAPP_APP_SECRET,
            phone_number_id=settings.WHATSAPP_PHONE_NUMBER_ID,
            waba_id=settings.WHATSAPP_BUSINESS_ACCOUNT_ID or FakeConfig.waba_id,
            webhook_url=options["webhook_url"],
            latency_ms=options["latency_ms"],
            mps=options["mps"],
            enforce_window=not options["no_window"],
        )
        server = FakeGraphServer(options["host"], options["port"], config).start()
        self.stdout.write(f"Fake WhatsApp Cloud API on {server.url}")
        for template in DEV_TEMPLATES:  # what "Meta" holds for the council on a dev box
            server.state.templates[(template.name, template.language)] = template
        synced = False
        try:
            while True:  # "Meta" approves what the council registers in the admin (dev only)
                mirror_templates(server)
                synced = synced or sync_once()
                time.sleep(5)
        except KeyboardInterrupt:
            server.stop()


# Meta-shaped templates the fake starts with (as WhatsApp Manager would show them), so the
# sync, the desk's preview and template sends work out of the box: positional and named
# parameters, a link button, a footer.
DEV_TEMPLATES = [
    Template(
        id="1000000000000101",
        name="notizia_comune",
        language="it",
        category="utility",
        components=[
            {
                "type": "HEADER",
                "format": "TEXT",
                "text": "{{1}}",
                "example": {"header_text": ["Avviso"]},
            },
            {
                "type": "BODY",
                "text": "*Comune informa*: {{1}}",
                "example": {"body_text": [["La scuola resta chiusa domani."]]},
            },
            {"type": "FOOTER", "text": "Scrivi CANCELLAMI per non ricevere più notizie"},
        ],
    ),
    Template(
        id="1000000000000102",
        name="city_news",
        language="en",
        category="utility",
        parameter_format="NAMED",
        components=[
            {
                "type": "BODY",
                "text": "*{{title}}*\n{{summary}}",
                "example": {
                    "body_text_named_params": [
                        {"param_name": "title", "example": "Roadworks"},
                        {"param_name": "summary", "example": "Via Roma is closed on Monday."},
                    ]
                },
            },
            {"type": "FOOTER", "text": "Reply STOP to unsubscribe"},
        ],
    ),
    Template(
        id="1000000000000103",
        name="notizia_con_link",
        language="it",
        category="marketing",
        components=[
            {"type": "BODY", "text": "{{1}}\n\n{{2}}", "example": {"body_text": [["T", "B"]]}},
            {
                "type": "BUTTONS",
                "buttons": [
                    {"type": "URL", "text": "Leggi", "url": "https://www.comune.example.it/{{1}}"}
                ],
            },
        ],
    ),
]


def sync_once() -> bool:
    """The templates above in the admin at once (beat syncs nightly): True when done."""
    from channel.graph.templates import TemplateSyncError, templates_sync

    try:
        templates_sync()
    except (TemplateSyncError, DatabaseError):  # not migrated yet, or the web not up
        return False
    return True


def mirror_templates(server: FakeGraphServer) -> None:
    """Templates typed by hand in the admin are "approved" by this Meta too (dev only)."""
    try:
        rows = list(MessageTemplate.objects.filter(synced_at=None, gone_at=None))
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
            id=str(900_000_000_000_000 + row.pk),
        )
