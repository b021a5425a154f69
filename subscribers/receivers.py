"""Receivers for channel's upward signals; connected in SubscribersConfig.ready().

Each returns a list of problem lines, which channel writes to the webhook's archive row.
"""

from __future__ import annotations

from django.db import transaction

from subscribers.conversation import inbound
from subscribers.delivery.statuses import apply_statuses


def on_inbound_messages(sender, messages, **kwargs) -> list[str]:
    problems = inbound.handle_messages(messages=messages)
    # After the conversation, so people who have just joined get their window recorded too.
    with transaction.atomic():
        inbound.touch_last_inbound(messages=messages)
    return problems


def on_statuses(sender, updates, **kwargs) -> list[str]:
    """Posts' statuses onto the delivery ledger."""
    with transaction.atomic():  # one savepoint: a failure here must not poison the caller's
        apply_statuses(updates)
    return []


def on_preferences(sender, preferences, **kwargs) -> list[str]:
    return inbound.apply_preferences(preferences=preferences)
