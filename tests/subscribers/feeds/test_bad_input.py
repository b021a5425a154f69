"""A feed that fails shows why on its row; nothing is posted, and the other feeds go on."""

from __future__ import annotations

import logging

import pytest
from django.utils import translation

from subscribers.feeds.models import Feed
from subscribers.feeds.polling import feed_poll
from tests.subscribers.feeds.helpers import fixture, make_feed
from topics.models import Post

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english():
    """The messages below are matched in English; the Italian ones are checked once, apart."""
    with translation.override("en"):
        yield


BAD = {
    "server error": ({"body": b"oops", "status": 500}, "HTTP 500"),
    "not found": ({"body": b"", "status": 404}, "HTTP 404"),
    "not xml": ({"body": fixture("not-a-feed.html"), "content_type": "text/html"}, "RSS or Atom"),
    "billion laughs": ({"body": fixture("billion-laughs.xml")}, "unsafe"),
    "external entity": ({"body": fixture("xxe.xml")}, "unsafe"),
    "fifty megabytes": ({"body": b"<rss>" + b" " * 50_000_000 + b"</rss>"}, "larger than"),
    "too slow": ({"body": fixture("comune-news.rss"), "delay": 3}, "did not answer"),
    "dribbled": ({"body": fixture("comune-news.rss"), "dribble": 0.2}, "did not answer"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_a_bad_feed_shows_the_error_posts_nothing_and_the_next_feed_polls(
    case, feed_server, settings, caplog
):
    settings.BANDITORE_FEED_TIMEOUT_SECONDS = 1.5
    options, expected = BAD[case]
    bad = make_feed(feed_server.serve("/bad", **options))
    good = make_feed(feed_server.serve("/good.rss", fixture("comune-news.rss")))
    with caplog.at_level(logging.WARNING, logger="subscribers.feeds"):
        result = feed_poll(bad.pk)
    assert expected in " ".join(result.notes)
    bad.refresh_from_db()
    assert expected in bad.last_error and bad.last_error_at and bad.items_taken == 0
    assert not Post.objects.exists()
    # The log names the feed, and carries no traceback for an expected failure.
    [record] = [r for r in caplog.records if r.name.startswith("subscribers.feeds")]
    assert bad.name in record.getMessage() and record.exc_info is None
    assert len(feed_poll(good.pk).posts) == 2


def test_the_error_clears_when_the_feed_recovers(feed_server):
    url = feed_server.serve("/n.rss", b"", status=503)
    feed = make_feed(url)
    feed_poll(feed.pk)
    feed_server.serve("/n.rss", fixture("comune-news.rss"))
    feed_poll(feed.pk)
    feed.refresh_from_db()
    assert feed.last_error == "" and feed.items_taken == 2


def test_an_unreachable_feed_is_an_error_on_the_feed(settings):
    feed = make_feed("http://127.0.0.1:9/nowhere.rss")
    result = feed_poll(feed.pk)
    assert "could not be reached" in result.notes[0]
    assert Feed.objects.get(pk=feed.pk).last_error.startswith("The feed could not be reached")


def test_the_error_is_in_the_councils_language(feed_server):
    feed = make_feed(feed_server.serve("/bad", b"", status=500))
    with translation.override("it"):
        feed_poll(feed.pk)
    feed.refresh_from_db()
    assert feed.last_error == "Il feed ha risposto HTTP 500."
