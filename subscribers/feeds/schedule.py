"""Each feed's poll interval is a django-celery-beat entry of its own (Periodic tasks in the
admin shows it too); these keep the entry in step with the feed."""

from __future__ import annotations

import json

from django_celery_beat.models import IntervalSchedule, PeriodicTask

from subscribers.feeds.models import Feed

POLL_TASK = "banditore.feeds.poll_feed"


def feed_schedule(feed: Feed) -> PeriodicTask:
    """Create or update the feed's beat entry: every poll_minutes, enabled while it is active."""
    every, _created = IntervalSchedule.objects.get_or_create(
        every=feed.poll_minutes, period=IntervalSchedule.MINUTES
    )
    fields = {
        "name": f"Feed #{feed.pk}: {feed.name}"[:200],
        "task": POLL_TASK,
        "interval": every,
        "args": json.dumps([feed.pk]),
        "enabled": feed.is_active,
    }
    task = feed.periodic_task
    if task is None:
        task = PeriodicTask.objects.create(**fields)
        Feed.objects.filter(pk=feed.pk).update(periodic_task=task)
        feed.periodic_task = task
    else:
        for name, value in fields.items():
            setattr(task, name, value)
        task.save()
    return task


def on_feed_deleted(sender, instance: Feed, **kwargs) -> None:
    """post_delete receiver: a deleted feed's beat entry goes with it."""
    if instance.periodic_task_id:
        PeriodicTask.objects.filter(pk=instance.periodic_task_id).delete()
