"""RSS and Atom items become posts: one per item, ever, with text fit for WhatsApp."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from subscribers.feeds.models import Feed, FeedItem
from subscribers.feeds.polling import feed_poll
from tests.subscribers.feeds.helpers import fixture, make_feed
from topics.models import Post

pytestmark = pytest.mark.django_db


def test_each_new_item_appears_as_a_draft_within_one_poll(feed_server):
    feed = make_feed(feed_server.serve("/notizie.rss", fixture("comune-news.rss")))
    result = feed_poll(feed.pk)
    assert len(result.posts) == 2 and not result.notes
    posts = list(Post.objects.order_by("pk"))
    # Oldest first, as things happened: the feed lists the newest first.
    assert [p.title for p in posts] == [
        "Raccolta differenziata: nuovo calendario",
        "Chiusura di via Roma per lavori & asfaltatura",
    ]
    closure = posts[1]
    assert closure.status == Post.Status.DRAFT
    assert closure.body == (
        "Da lunedì 7 dicembre via Roma sarà chiusa al traffico tra piazza XX Settembre e "
        "via Mazzini.\n\nLe linee 3 e 7 sono deviate."
    )
    assert closure.link == "https://www.comune.example.it/novita/notizie/chiusura-via-roma"
    assert set(closure.topics.all()) == set(feed.topics.all())
    feed.refresh_from_db()
    assert feed.items_taken == 2 and feed.last_new_item_at and feed.last_error == ""


def test_an_atom_feed_reads_like_rss(feed_server):
    feed = make_feed(feed_server.serve("/avvisi.atom", fixture("comune-news.atom")))
    feed_poll(feed.pk)
    post = Post.objects.get()
    assert post.title == "Scuole chiuse giovedì per neve"
    assert post.body == "Le scuole di ogni ordine e grado resteranno chiuse giovedì 3 dicembre."
    assert post.link == "https://www.comune.example.it/avvisi/scuole-chiuse"


def test_a_republished_edited_or_reordered_item_never_posts_twice(feed_server):
    url = feed_server.serve("/notizie.rss", fixture("comune-news.rss"))
    feed = make_feed(url)
    feed_poll(feed.pk)
    edited = (
        fixture("comune-news.rss")
        .replace(b"Chiusura di via Roma", b"AGGIORNATO: chiusura di via Roma")
        .replace(b"<pubDate>Tue, 01 Dec", b"<pubDate>Wed, 02 Dec")
    )
    feed_server.serve("/notizie.rss", edited)
    assert feed_poll(feed.pk).posts == []
    assert Post.objects.count() == 2 == FeedItem.objects.count()


def test_an_unchanged_feed_is_asked_with_its_etag_and_costs_a_304(feed_server):
    feed = make_feed(feed_server.serve("/n.rss", fixture("comune-news.rss"), etag='"v1"'))
    feed_poll(feed.pk)
    result = feed_poll(feed.pk)
    assert result.unchanged and feed_server.conditional == ['"v1"']
    assert Post.objects.count() == 2


def test_items_without_titles_borrow_their_first_words_and_empty_ones_are_left(feed_server):
    feed = make_feed(feed_server.serve("/avvisi.rss", fixture("no-titles.rss")))
    result = feed_poll(feed.pk)
    post = Post.objects.get(pk__in=result.posts)
    assert post.title.startswith("Il mercato settimanale di sabato")
    assert len(post.title) <= 80
    assert Post.objects.count() == 1


def test_a_feed_with_no_items_is_fine(feed_server):
    feed = make_feed(feed_server.serve("/vuoto.rss", fixture("empty.rss")))
    result = feed_poll(feed.pk)
    assert result.posts == [] and result.notes == []
    feed.refresh_from_db()
    assert feed.last_polled_at and feed.last_error == ""


def test_long_text_is_cut_at_a_word_within_whatsapps_limit(feed_server):
    words = " ".join(["parola"] * 1500)
    body = fixture("comune-news.atom").replace(
        b"Le scuole di ogni ordine", words.encode() + b" Le scuole"
    )
    feed = make_feed(feed_server.serve("/lungo.atom", body))
    feed_poll(feed.pk)
    post = Post.objects.get()
    message = f"*{post.title}*\n\n{post.body}\n\n{post.link}"
    assert len(message) <= 4096
    assert post.body.endswith("parola…")


def test_an_inactive_feed_is_not_polled(feed_server):
    feed = make_feed(feed_server.serve("/n.rss", fixture("comune-news.rss")))
    Feed.objects.filter(pk=feed.pk).update(is_active=False)
    assert feed_poll(feed.pk) is None
    assert feed_server.requests["/n.rss"] == 0


@pytest.mark.django_db(transaction=True)
def test_two_polls_at_once_take_each_item_once(feed_server):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite runs one writer at a time: there is no race to test")
    url = feed_server.serve("/n.rss", fixture("comune-news.rss"), delay=0.3)
    feed = make_feed(url)
    results = []

    def poll():
        results.append(feed_poll(feed.pk))
        connection.close()

    threads = [threading.Thread(target=poll) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Post.objects.count() == 2 == FeedItem.objects.count()
    assert sorted(len(r.posts) if r else 0 for r in results) == [0, 0, 2]
