"""Read-only queries about audiences. They return querysets or numbers, never lists of people."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Exists, OuterRef, QuerySet

from subscribers.models import Subscriber, Subscription


def audience_for_topics(topic_ids: Iterable[int]) -> QuerySet[Subscriber]:
    """Active subscribers of any of the topics, each person once (EXISTS, not a join)."""
    chosen = Subscription.objects.filter(subscriber=OuterRef("pk"), topic_id__in=list(topic_ids))
    return Subscriber.objects.filter(Exists(chosen), status=Subscriber.Status.ACTIVE)


def reach_count(topic_ids: Iterable[int]) -> int:
    return audience_for_topics(topic_ids).count()
