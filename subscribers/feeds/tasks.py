"""The feeds' Celery task: thin, safe to run twice (an item already taken is never taken again)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="banditore.feeds.poll_feed", ignore_result=True)
def poll_feed(feed_id: int) -> None:
    from subscribers.feeds.polling import feed_poll

    feed_poll(feed_id)
