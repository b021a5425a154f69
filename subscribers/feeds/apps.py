from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class FeedsConfig(AppConfig):
    name = "subscribers.feeds"
    label = "feeds"
    verbose_name = _("Feeds")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.checks import register
        from django.db.models.signals import post_delete

        from subscribers.feeds import schedule
        from subscribers.feeds.checks import check_feed_settings
        from subscribers.feeds.models import Feed

        register(check_feed_settings)
        post_delete.connect(schedule.on_feed_deleted, sender=Feed, dispatch_uid="feeds.unschedule")
