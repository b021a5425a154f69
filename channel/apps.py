from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import Error, Warning, register
from django.utils.translation import gettext_lazy as _


class ChannelConfig(AppConfig):
    name = "channel"
    verbose_name = _("WhatsApp channel")

    def ready(self) -> None:
        from channel import service_messages, tasks

        register(check_whatsapp_settings)
        service_messages.outbound_queued.connect(
            tasks.enqueue_outbound_message, dispatch_uid="channel.enqueue_outbound_message"
        )


def check_whatsapp_settings(app_configs=None, **kwargs) -> list:
    """A half-configured account fails in odd ways at the first send; say so at start-up."""
    problems: list = []
    if not settings.WHATSAPP_ACCESS_TOKEN:
        return problems  # not configured at all: fine for development and tests
    for name in ("WHATSAPP_PHONE_NUMBER_ID", "WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN"):
        if not getattr(settings, name):
            problems.append(
                Error(
                    f"{name} is empty while WHATSAPP_ACCESS_TOKEN is set",
                    hint="Copy it from the App Dashboard: WhatsApp → API Setup.",
                    id="channel.E001",
                )
            )
    if settings.WHATSAPP_MPS > 1000:
        problems.append(
            Warning(
                f"WHATSAPP_MPS={settings.WHATSAPP_MPS} is above Meta's maximum of 1,000/s",
                hint="Meta answers error 130429 above the number's throughput.",
                id="channel.W001",
            )
        )
    return problems
