"""The weekly digest's schedule: a django-celery-beat entry in the database, so an
administrator edits it in the admin (Periodic tasks → "Weekly digest"). Made once, after
`migrate`, and never touched again: beat rewrites the entries of deploy/schedule.py at every
start, which would undo an edit, so this one is not there."""

from __future__ import annotations

from django.conf import settings

DIGEST_TASK_NAME = "Weekly digest"
DIGEST_TASK = "banditore.subscribers.send_digest"
# Thursday 10:00, the council's time: the day Pordenone's weekly message goes out.
DEFAULT_CRONTAB = {"minute": "0", "hour": "10", "day_of_week": "4"}


def ensure_digest_schedule(**_signal) -> bool:
    """Create the entry if it is missing (post_migrate); True when it was created."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    if PeriodicTask.objects.filter(task=DIGEST_TASK).exists():
        return False
    crontab, _created = CrontabSchedule.objects.get_or_create(
        **DEFAULT_CRONTAB, day_of_month="*", month_of_year="*", timezone=settings.TIME_ZONE
    )
    _task, created = PeriodicTask.objects.get_or_create(
        name=DIGEST_TASK_NAME,
        defaults={
            "task": DIGEST_TASK,
            "crontab": crontab,
            "description": "The weekly digest (README, The weekly digest). Change the day "
            "and time here; disable it to stop the digest.",
        },
    )
    return created
