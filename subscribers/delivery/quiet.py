"""Quiet hours (BANDITORE_QUIET_HOURS, e.g. 21:00-08:00 in the council's TIME_ZONE).

Non-urgent sending stops when they start and resumes where it left off when they end: senders
look between batches (subscribers.delivery.sending), beat leaves scheduled posts due inside them
for later (subscribers.delivery.publishing.publish_due_posts), and the plan's and the progress
panel's finish estimates step over them. Urgent posts ignore them. The time comes from the one
clock (channel.clock), which tests set.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.formats import time_format
from django.utils.translation import gettext as _

from channel import clock


def _periods(at: datetime) -> Iterator[tuple[datetime, datetime]]:
    """Quiet periods from the one that began the day before `at` onwards, in order."""
    start, end = settings.BANDITORE_QUIET_HOURS
    zone = timezone.get_default_timezone()
    day = timezone.localtime(at, zone).date() - timedelta(days=1)
    while True:
        begins = timezone.make_aware(datetime.combine(day, start), zone)
        ends_on = day if end > start else day + timedelta(days=1)
        yield begins, timezone.make_aware(datetime.combine(ends_on, end), zone)
        day += timedelta(days=1)


def quiet_until(at: datetime | None = None, *, urgent: bool = False) -> datetime | None:
    """When the quiet hours going on at `at` (now by default) end; None outside them, without
    quiet hours, and for urgent posts."""
    if urgent or not settings.BANDITORE_QUIET_HOURS:
        return None
    at = at or clock.now()
    for begins, ends in _periods(at):
        if begins > at:
            return None
        if at < ends:
            return ends
    return None  # pragma: no cover  (the generator is endless)


def finish_after_quiet(
    start: datetime, duration: timedelta, *, urgent: bool = False
) -> tuple[datetime, datetime | None]:
    """When `duration` of sending that begins at `start` ends, counting only the time outside
    quiet hours; and the end of the first quiet period it waits for (None if it waits for none)."""
    if urgent or not settings.BANDITORE_QUIET_HOURS:
        return start + duration, None
    at, left, resumes = start, duration, None
    for begins, ends in _periods(start):
        if ends <= at:
            continue
        if begins > at:
            if at + left <= begins:
                return at + left, resumes
            left -= begins - at
        resumes = resumes or ends
        at = ends
    raise AssertionError("unreachable")  # pragma: no cover


def quiet_note(resumes: datetime | None) -> str:
    """What the desk shows: "paused for quiet hours until 08:00"."""
    if resumes is None:
        return ""
    until = time_format(timezone.localtime(resumes), "H:i")
    return _("paused for quiet hours until %(time)s") % {"time": until}
