"""`manage.py sync_templates`: read the message templates from Meta now (beat does it nightly)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from channel.graph.templates import TemplateSyncError, templates_sync


class Command(BaseCommand):
    help = "Sync the message templates from Meta (GET /{WABA-ID}/message_templates, all pages)."

    def handle(self, *args, **options) -> None:
        try:
            result = templates_sync()
        except TemplateSyncError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(result.summary())
