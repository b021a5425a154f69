from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TopicsConfig(AppConfig):
    name = "topics"
    verbose_name = _("Topics and posts")

    def ready(self) -> None:
        from channel import signals
        from topics import receivers

        signals.simulator_used.connect(receivers.on_simulator_used, dispatch_uid="topics.simulator")
        signals.templates_synced.connect(
            receivers.on_templates_synced, dispatch_uid="topics.templates_synced"
        )
