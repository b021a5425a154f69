"""Civil-protection alerts (CAP 1.2): the council's area only, urgent when they say so."""

from __future__ import annotations

import json

import pytest
from django.utils import translation

from subscribers.delivery import sending
from subscribers.feeds.models import Feed, FeedItem
from subscribers.feeds.polling import feed_poll
from tests.factories import make_subscriber, make_topic
from tests.subscribers.feeds.helpers import fixture, make_feed
from topics.models import Post

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("council_area")]


@pytest.fixture(autouse=True)
def _english():
    """The messages below are matched in English; the Italian ones are checked once, apart."""
    with translation.override("en"):
        yield


def cap_feed(feed_server, name: str, **options) -> Feed:
    return make_feed(feed_server.serve(f"/{name}", fixture(name)), kind=Feed.Kind.CAP, **options)


def test_an_alert_for_the_area_reaches_the_civil_protection_subscribers(
    feed_server, fake_graph, template
):
    civil_protection, schools = make_topic(slug="protezione-civile"), make_topic()
    warned = [make_subscriber(topics=[civil_protection]) for _ in range(3)]
    make_subscriber(topics=[schools])
    feed = cap_feed(feed_server, "cap-area.xml", mode=Feed.Mode.PUBLISH, topics=[civil_protection])
    [post_id] = feed_poll(feed.pk).posts
    post = Post.objects.get(pk=post_id)
    assert post.is_urgent and post.status == Post.Status.SENDING
    assert post.title == "Allerta rossa: piena del fiume Noncello"  # Italian preferred
    assert post.body.startswith("Si prevede il superamento")
    assert "Evitare i sottopassi" in post.body
    assert post.link == "https://www.protezionecivile.example.it/allerte/2026-1201-001"
    assert post.expires_at.year == 2099
    sending.drain_post(post.pk)
    assert sorted(e["to"] for e in fake_graph.outbox()) == sorted(s.wa_id for s in warned)


def test_an_alert_for_another_area_is_ignored_and_counted(feed_server):
    feed = cap_feed(feed_server, "cap-other-area.xml", mode=Feed.Mode.PUBLISH)
    result = feed_poll(feed.pk)
    assert result.posts == [] and result.skipped == 1
    feed.refresh_from_db()
    assert feed.alerts_ignored == 1 and not Post.objects.exists()
    assert FeedItem.objects.get().skipped == "another area"
    feed_poll(feed.pk)  # seen once: not counted again
    feed.refresh_from_db()
    assert feed.alerts_ignored == 1


def test_the_council_polygon_matches_an_alert_drawn_over_it(feed_server, settings):
    settings.BANDITORE_CAP_AREA_CODES = []
    settings.BANDITORE_CAP_AREA_POLYGON = (
        "45.98,12.62 45.98,12.70 45.93,12.70 45.93,12.62 45.98,12.62"
    )
    drawn = fixture("cap-other-area.xml").replace(
        b"<geocode><valueName>ISTAT</valueName><value>058091</value></geocode>",
        b"<polygon>46.0,12.5 46.0,12.8 45.9,12.8 45.9,12.5 46.0,12.5</polygon>",
    )
    far = drawn.replace(b"IT-PROTCIV-LAZ-2026-1201-007", b"far-away").replace(
        b"46.0,12.5 46.0,12.8 45.9,12.8 45.9,12.5 46.0,12.5",
        b"41.9,12.4 41.9,12.6 41.8,12.6 41.8,12.4 41.9,12.4",
    )
    near_feed = make_feed(feed_server.serve("/near", drawn), kind=Feed.Kind.CAP)
    far_feed = make_feed(feed_server.serve("/far", far), kind=Feed.Kind.CAP)
    assert len(feed_poll(near_feed.pk).posts) == 1
    assert feed_poll(far_feed.pk).posts == []


def test_an_update_and_a_cancel_say_so_and_the_cancel_stops_the_alert(feed_server):
    feed = cap_feed(feed_server, "cap-area.xml")
    [alert_id] = feed_poll(feed.pk).posts
    feed_server.serve("/cap-area.xml", fixture("cap-update.xml"))
    [update_id] = feed_poll(feed.pk).posts
    assert (
        Post.objects.get(pk=update_id).title
        == "Aggiornamento: Piena del Noncello: colmo previsto alle 18"
    )
    feed_server.serve("/cap-area.xml", fixture("cap-cancel.xml"))
    [cancel_id] = feed_poll(feed.pk).posts
    assert Post.objects.get(pk=cancel_id).title == "Revocato: Allerta per il Noncello"
    assert Post.objects.get(pk=alert_id).status == Post.Status.CANCELLED


@pytest.mark.parametrize(
    "change, reason",
    [
        ((b"<status>Actual</status>", b"<status>Exercise</status>"), "not a real alert"),
        ((b"<msgType>Alert</msgType>", b"<msgType>Ack</msgType>"), "message type Ack"),
        ((b"2099-12-02", b"2020-12-02"), "expired"),
    ],
)
def test_exercises_acknowledgements_and_expired_alerts_make_no_post(feed_server, change, reason):
    feed = make_feed(
        feed_server.serve("/a", fixture("cap-area.xml").replace(*change)), kind=Feed.Kind.CAP
    )
    assert feed_poll(feed.pk).posts == []
    assert reason in FeedItem.objects.get().skipped


def test_the_urgency_rule_is_a_setting(feed_server, settings):
    settings.BANDITORE_CAP_URGENT = "severity=Extreme"
    feed = cap_feed(feed_server, "cap-area.xml")
    [post_id] = feed_poll(feed.pk).posts
    assert not Post.objects.get(pk=post_id).is_urgent


def test_an_index_of_alerts_fetches_each_alert_once(feed_server):
    alert_url = feed_server.serve("/alerts/1.xml", fixture("cap-area.xml"))
    index = f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Allerte</title><id>urn:allerte</id>
<updated>2026-12-01T08:00:00Z</updated>
<entry><title>Allerta</title><id>urn:a1</id><updated>2026-12-01T08:00:00Z</updated>
<link href="{alert_url}"/></entry></feed>""".encode()
    feed = make_feed(feed_server.serve("/index.atom", index), kind=Feed.Kind.CAP)
    assert len(feed_poll(feed.pk).posts) == 1
    assert feed_poll(feed.pk).posts == []
    assert feed_server.requests["/alerts/1.xml"] == 1


@pytest.mark.parametrize("name", ["billion-laughs.xml", "xxe.xml"])
def test_hostile_alerts_are_refused(feed_server, name):
    feed = make_feed(feed_server.serve("/x", fixture(name)), kind=Feed.Kind.CAP)
    assert "unsafe" in feed_poll(feed.pk).notes[0]
    assert not Post.objects.exists()


def test_people_who_chose_english_read_the_alerts_english_block(feed_server, fake_graph, template):
    civil_protection = make_topic()
    italian = make_subscriber(topics=[civil_protection], language="it")
    english = make_subscriber(topics=[civil_protection], language="en")
    feed = cap_feed(feed_server, "cap-area.xml", mode=Feed.Mode.PUBLISH, topics=[civil_protection])
    [post_id] = feed_poll(feed.pk).posts
    post = Post.objects.get(pk=post_id)
    assert post.title_en == "Red alert: Noncello river flood"
    assert post.body_en == "The river is expected to exceed the warning level in the next hours."
    sending.drain_post(post.pk)
    [to_italian] = fake_graph.outbox(to=italian.wa_id)
    [to_english] = fake_graph.outbox(to=english.wa_id)
    assert "Noncello river flood" in json.dumps(to_english["payload"])
    assert "piena del fiume Noncello" in json.dumps(to_italian["payload"])
    assert "river" not in json.dumps(to_italian["payload"])


def test_an_alert_only_in_italian_reaches_english_readers_in_italian(feed_server):
    only_italian = fixture("cap-area.xml").split(b"<info>\n    <language>en-US")[0] + b"</alert>"
    feed = make_feed(feed_server.serve("/it", only_italian), kind=Feed.Kind.CAP)
    [post_id] = feed_poll(feed.pk).posts
    assert Post.objects.get(pk=post_id).title_en == ""
