"""The weekly digest against the fake Graph API: who waits for it, one digest per person and
period, each person's own topics only, within Meta's limits, and exactly once after a crash."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from subscribers.delivery import digest, publishing, sending, sweeper
from subscribers.delivery.digest_render import page_token
from subscribers.models import Delivery, Subscriber
from tests.factories import make_post, make_subscriber, make_topic
from tests.subscribers.delivery.helpers import fast_sending
from topics.models import AuditEntry, Post, Topic

pytestmark = pytest.mark.django_db

THURSDAY = datetime(2026, 12, 3, 10, 0, tzinfo=timezone.get_default_timezone())


@pytest.fixture(autouse=True)
def fast(settings, redis_conn):
    fast_sending(settings, batch=20)
    settings.BANDITORE_DIGEST_DEFAULT = "weekly"


def digest_topic(**fields) -> Topic:
    return make_topic(delivery=Topic.Delivery.DIGEST, **fields)


def in_window(fake_graph, person: Subscriber) -> Subscriber:
    """The person wrote to us just now: free-form messages reach them."""
    Subscriber.objects.filter(pk=person.pk).update(last_inbound_at=timezone.now())
    fake_graph.mark_inbound(person.wa_id)
    return person


def publish(*topics, **fields) -> Post:
    post = make_post(topics=topics, **fields)
    publishing.post_publish(post=post)
    post.refresh_from_db()
    return post


def reached(post: Post) -> set[int]:
    return set(Delivery.objects.filter(post=post).values_list("subscriber_id", flat=True))


def texts(fake_graph, person: Subscriber) -> list[str]:
    return [e["payload"]["text"]["body"] for e in fake_graph.outbox(to=person.wa_id)]


def send_all(post: Post) -> None:
    assert sending.drain_post(post.pk) is None


def test_posts_of_digest_topics_wait_for_those_who_chose_the_digest(template, settings):
    weekly_topic, now_topic = digest_topic(), make_topic()
    weekly = make_subscriber(topics=[weekly_topic])  # the council's default: weekly
    eager = make_subscriber(topics=[weekly_topic], digest_preference="immediate")
    both = make_subscriber(topics=[weekly_topic, now_topic])  # an immediate topic of the post
    post = publish(weekly_topic, now_topic)
    assert post.waits_for_digest
    assert reached(post) == {eager.pk, both.pk}
    assert digest.later_count(post) == 1
    # Urgent, or "at once" chosen on the post: everyone now, nothing waits.
    urgent = publish(weekly_topic, is_urgent=True)
    assert reached(urgent) == {weekly.pk, eager.pk, both.pk} and not urgent.waits_for_digest
    at_once = publish(weekly_topic, delivery=Post.Delivery.IMMEDIATE)
    assert len(reached(at_once)) == 3 and not at_once.waits_for_digest
    # "In the digest" chosen on a post of an immediate topic: the weekly people wait.
    chosen = publish(now_topic, delivery=Post.Delivery.DIGEST)
    assert chosen.waits_for_digest and reached(chosen) == set()
    assert chosen.status == Post.Status.SENT and "riepilogo" in chosen.status_note  # Italian
    # The council's default decides for everyone who has not chosen.
    settings.BANDITORE_DIGEST_DEFAULT = "immediate"
    assert reached(publish(weekly_topic)) == {weekly.pk, eager.pk, both.pk}


def test_one_digest_gathers_each_persons_topics_and_skips_people_with_nothing_new(
    fake_graph, template
):
    schools, roads, events = digest_topic(order=1), digest_topic(order=2), digest_topic(order=3)
    roads.name_it = "Strade"
    roads.save()
    parent = in_window(fake_graph, make_subscriber(topics=[schools, roads]))
    driver = in_window(fake_graph, make_subscriber(topics=[roads]))
    idle = in_window(fake_graph, make_subscriber(topics=[events]))  # nothing new for them
    eager = make_subscriber(topics=[schools], digest_preference="immediate")
    closure = publish(roads, title="Via Roma chiusa", body="Lavori fino a venerdì.\nDettagli")
    canteen = publish(schools, title="Mensa", body="Nuovo menù", link="https://comune.example.it/m")
    both = publish(schools, roads, title="Scuolabus", body="Orari nuovi")
    send_all(canteen)  # the eager person gets the canteen post at once

    result = digest.digest_publish(THURSDAY)

    assert result.gathered == 3 and result.recipients == 2
    assert reached(result.digest) == {parent.pk, driver.pk}  # not idle, not eager (had it)
    assert set(Post.objects.filter(digest=result.digest)) == {closure, canteen, both}
    send_all(result.digest)
    [text] = texts(fake_graph, parent)
    # Ordered by topic; a post on two of their topics once, under the first; title, a line,
    # the link.
    assert text.index("Mensa") < text.index("Scuolabus") < text.index("Strade")
    assert text.count("Scuolabus") == 1
    assert "• *Via Roma chiusa*\nLavori fino a venerdì." in text
    assert "https://comune.example.it/m" in text and "Dettagli" not in text
    [driver_text] = texts(fake_graph, driver)
    assert "Mensa" not in driver_text and "Via Roma chiusa" in driver_text
    assert texts(fake_graph, idle) == [] and fake_graph.outbox(to=eager.wa_id)[0]
    assert len(fake_graph.outbox(to=eager.wa_id)) == 1  # the post once, no digest
    result.digest.refresh_from_db()
    assert result.digest.status == Post.Status.SENT
    assert AuditEntry.objects.filter(action="digest").count() == 1


def test_a_second_run_for_the_period_makes_no_second_digest(template):
    topic = digest_topic()
    make_subscriber(topics=[topic])
    publish(topic)
    first = digest.digest_publish(THURSDAY)
    again = digest.digest_publish(THURSDAY + timedelta(minutes=5))
    assert again.already_made and again.digest == first.digest
    assert Post.objects.filter(kind=Post.Kind.DIGEST).count() == 1
    assert Delivery.objects.filter(post=first.digest).count() == 1
    # The database holds it too: one digest per period.
    with pytest.raises(IntegrityError), transaction.atomic():
        Post.objects.create(kind="digest", digest_of=first.digest.digest_of, title="x", body="x")


def test_nothing_waiting_means_no_digest_at_all(template):
    topic = make_topic()  # immediate
    make_subscriber(topics=[topic])
    publish(topic)
    assert digest.digest_publish(THURSDAY).digest is None
    assert not Post.objects.filter(kind=Post.Kind.DIGEST).exists()


def test_next_weeks_digest_holds_only_what_came_after(fake_graph, template):
    topic = digest_topic()
    person = in_window(fake_graph, make_subscriber(topics=[topic]))
    publish(topic, title="Prima")
    send_all(digest.digest_publish(THURSDAY).digest)
    publish(topic, title="Seconda")
    week_two = digest.digest_publish(THURSDAY + timedelta(days=7))
    send_all(week_two.digest)
    first, second = texts(fake_graph, person)
    assert "Prima" in first and "Seconda" not in first
    assert "Seconda" in second and "Prima" not in second


def test_outside_the_window_a_template_carries_the_titles_and_the_page(
    fake_graph, template, client
):
    topic = digest_topic()
    person = make_subscriber(topics=[topic], last_inbound_at=timezone.now() - timedelta(days=3))
    publish(topic, title="Mercato spostato", body="Da sabato in piazza Duomo.")
    publish(topic, title="Farmacie di turno", body="Elenco aggiornato.")
    result = digest.digest_publish(THURSDAY)
    send_all(result.digest)
    [entry] = fake_graph.outbox(to=person.wa_id)
    assert entry["payload"]["type"] == "template"
    title, body = (p["text"] for p in entry["payload"]["template"]["components"][0]["parameters"])
    assert title == "Il riepilogo della settimana"
    assert "Mercato spostato; Farmacie di turno" in body and "\n" not in body
    url = re.search(r"https?://\S+", body).group(0)
    page = client.get("/" + url.split("://", 1)[1].split("/", 1)[1])
    assert page.status_code == 200
    html = page.content.decode()
    assert "Da sabato in piazza Duomo." in html and "Farmacie di turno" in html
    assert page["X-Robots-Tag"] == "noindex"


def test_a_digest_too_long_for_one_message_links_the_page(fake_graph, template, client):
    topic = digest_topic()
    person = in_window(fake_graph, make_subscriber(topics=[topic]))
    for n in range(40):
        publish(topic, title=f"Notizia {n:02d} " + "x" * 60, body="Una riga. " * 30)
    send_all(digest.digest_publish(THURSDAY).digest)
    [text] = texts(fake_graph, person)
    assert len(text) <= 4096
    shown = len(re.findall(r"Notizia \d\d", text))
    assert 0 < shown < 40
    assert f"altre {40 - shown} notizie" in text
    path = "/" + re.search(r"https?://[^/]+/(\S+)", text).group(1)
    assert client.get(path).content.decode().count("Notizia ") == 40


def test_the_page_refuses_a_forged_or_erased_reference(template, client):
    topic = digest_topic()
    person = make_subscriber(topics=[topic])
    publish(topic)
    made = digest.digest_publish(THURSDAY).digest
    assert client.get(f"/digest/{page_token(made.pk, person.pk)}/").status_code == 200
    forged = page_token(made.pk, person.pk).replace(f"-{person.pk}:", f"-{person.pk + 1}:")
    assert client.get(f"/digest/{forged}/").status_code == 404
    Subscriber.objects.filter(pk=person.pk).update(status="erased", wa_id=None)
    assert client.get(f"/digest/{page_token(made.pk, person.pk)}/").status_code == 404


def test_a_crash_mid_digest_still_gives_everyone_their_digest_once(fake_graph, template, settings):
    """A sender dies holding a claimed batch (its rows stay `sending`, never sent) after
    another batch went out; the sweeper returns the held rows and a new sender finishes."""
    topic = digest_topic()
    people = [in_window(fake_graph, make_subscriber(topics=[topic])) for _ in range(50)]
    publish(topic)
    made = digest.digest_publish(THURSDAY).digest
    sending.drain_post(made.pk, budget_seconds=1e-6)  # one batch of 20 sent
    held = sending.claim_batch(made.pk, 20)  # the crash: claimed, never sent
    assert len(held) == 20
    settings.BANDITORE_SETTLE_SECONDS = 0
    sweeper.sweep()
    send_all(made)
    digest.digest_publish(THURSDAY)  # the beat entry runs again: nothing more
    sending.drain_post(made.pk)
    per_person = Counter(entry["to"] for entry in fake_graph.outbox())
    assert per_person == {person.wa_id: 1 for person in people}


def test_the_schedule_is_thursday_at_ten_and_an_administrators_edit_stays(template):
    from django_celery_beat.models import PeriodicTask

    from subscribers import tasks
    from subscribers.delivery.digest_schedule import DIGEST_TASK, ensure_digest_schedule

    entry = PeriodicTask.objects.get(task=DIGEST_TASK)  # made after migrate
    crontab = entry.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_week) == ("0", "10", "4")
    assert str(crontab.timezone) == "Europe/Rome" and entry.enabled
    crontab.hour = "9"
    crontab.save()
    assert ensure_digest_schedule() is False
    assert PeriodicTask.objects.get(task=DIGEST_TASK).crontab.hour == "9"
    # The beat entry's task: a digest when something waits, nothing the second time.
    topic = digest_topic()
    make_subscriber(topics=[topic])
    publish(topic)
    assert tasks.send_digest() == 1
    assert tasks.send_digest() == 1  # the same digest, found again
    assert Post.objects.filter(kind=Post.Kind.DIGEST).count() == 1


def test_a_digest_over_the_monthly_budget_is_refused_and_the_posts_keep_waiting(template, settings):
    from decimal import Decimal

    topic = digest_topic()
    for _ in range(3):  # outside the window: three templates at the rate card's price
        make_subscriber(topics=[topic], last_inbound_at=None)
    post = publish(topic)
    settings.BANDITORE_MONTHLY_BUDGET_EUR = Decimal("0.01")
    refused = digest.digest_publish(THURSDAY)
    assert refused.digest is None and "budget" in refused.refused.lower()
    assert not Post.objects.filter(kind=Post.Kind.DIGEST).exists()
    assert list(digest.waiting_posts()) == [post]  # rolled back: still waiting
    entry = AuditEntry.objects.get(action="digest_refused")
    assert Decimal(entry.details["estimate_eur"]) > Decimal("0.01")
    settings.BANDITORE_MONTHLY_BUDGET_EUR = Decimal("1000")
    made = digest.digest_publish(THURSDAY)
    assert made.recipients == 3 and not list(digest.waiting_posts())
    assert Decimal(AuditEntry.objects.get(action="digest").details["estimate_eur"]) > 0
