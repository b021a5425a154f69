from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SubscribersConfig(AppConfig):
    name = "subscribers"
    verbose_name = _("Subscribers and deliveries")

    def ready(self) -> None:
        from django.core.checks import register

        from channel import signals
        from subscribers.conversation.privacy import check_privacy_settings

        register(check_privacy_settings)
        from subscribers import receivers, tasks
        from subscribers.delivery.signals import senders_needed

        signals.inbound_messages_received.connect(
            receivers.on_inbound_messages, dispatch_uid="subscribers.inbound_messages"
        )
        signals.statuses_received.connect(
            receivers.on_statuses, dispatch_uid="subscribers.delivery.statuses"
        )
        signals.preferences_received.connect(
            receivers.on_preferences, dispatch_uid="subscribers.preferences"
        )
        senders_needed.connect(tasks.wake_senders, dispatch_uid="subscribers.wake_senders")
        from django.db.models.signals import post_migrate

        from subscribers.delivery.digest_schedule import ensure_digest_schedule

        # The digest's beat entry, made once and then the administrators' to edit.
        post_migrate.connect(ensure_digest_schedule, sender=self, dispatch_uid="digest_schedule")
