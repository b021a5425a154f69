"""The 24-hour customer-service window: free-form messages only within 24 h of the person's
last message; outside it only an approved template may be sent (Meta answers 131047).
https://developers.facebook.com/docs/whatsapp/cloud-api/guides/send-messages#customer-service-windows

Meta measures the window by its own clock when our message arrives, so we stop sending
free-form a few minutes early: a message built in the last seconds of the window would arrive
after it closed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

WINDOW = timedelta(hours=24)
MARGIN = timedelta(minutes=5)
_OPEN_FOR = WINDOW - MARGIN


def window_cutoff(now: datetime | None = None) -> datetime:
    """A last message after this moment keeps the window open for free-form messages."""
    return (now or timezone.now()) - _OPEN_FOR


def in_window(last_inbound_at: datetime | None, now: datetime | None = None) -> bool:
    return last_inbound_at is not None and last_inbound_at > (now or timezone.now()) - _OPEN_FOR
