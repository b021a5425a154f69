"""Once a post is scheduled (or further) only someone who may publish changes it.

A Redattore writes drafts; a Pubblicatore approves them by sending or scheduling. Every way the
admin offers to change a post (its form, a forged POST to it, save as new, delete, the actions,
a draft changed while its confirmation page is open) must keep the editor's text from going
out without a publisher."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.sites import site
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.utils import timezone
from django.utils.html import escape

from channel.models import OutboundMessage
from subscribers.delivery import publishing
from subscribers.desk.post_actions import ACTIONS
from subscribers.models import Delivery
from tests.factories import log_in_as, make_subscriber, make_topic
from tests.subscribers.desk.helpers import CHANGELIST, change_form_data, confirm, versions_in
from topics.models import AuditEntry, Post, Topic

pytestmark = pytest.mark.django_db

NOT_DRAFT = [Post.Status.SCHEDULED, Post.Status.SENDING, Post.Status.SENT, Post.Status.CANCELLED]


@pytest.fixture
def publisher() -> User:
    return log_in_as(Client(), "Pubblicatore")


@pytest.fixture
def scheduled(post, publisher) -> Post:
    """The fixture's draft (one topic, three people), scheduled by a Pubblicatore for tomorrow;
    another topic with two more people exists."""
    roads = make_topic(slug="strade")
    make_subscriber(topics=[roads])
    make_subscriber(topics=[roads])
    return publishing.post_schedule(
        post=post, send_at=timezone.now() + timedelta(days=1), user=publisher
    )


def snapshot(post: Post) -> tuple:
    post = Post.objects.get(pk=post.pk)
    topics = sorted(post.topics.values_list("pk", flat=True))
    return post.status, post.title, post.body, post.send_at, post.is_urgent, topics


def the_editors_version(post: Post) -> dict:
    return change_form_data(
        post,
        body="Testo del redattore",
        topics=list(Topic.objects.values_list("pk", flat=True)),
        send_at=timezone.now() + timedelta(minutes=1),
        is_urgent=True,
    )


def test_a_redattore_sees_a_scheduled_post_read_only(client, scheduled):
    log_in_as(client, "Redattore")
    page = client.get(f"{CHANGELIST}{scheduled.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert escape(scheduled.body) in html
    assert 'name="body"' not in html and 'name="topics"' not in html
    assert 'name="_save"' not in html and "post-action-" not in html


def test_a_redattore_cannot_change_a_scheduled_post_by_posting_the_form(client, scheduled):
    before = snapshot(scheduled)
    log_in_as(client, "Redattore")
    response = client.post(f"{CHANGELIST}{scheduled.pk}/change/", the_editors_version(scheduled))
    assert response.status_code == 403
    assert snapshot(scheduled) == before
    assert not AuditEntry.objects.filter(action="edit").exists()
    # A minute later beat finds nothing due: the post still goes out tomorrow, as approved.
    assert publishing.publish_due_posts(now=timezone.now() + timedelta(minutes=2)) == 0
    assert not Delivery.objects.exists()


@pytest.mark.parametrize("status", NOT_DRAFT)
def test_no_post_past_draft_is_the_redattores_to_change(client, post, status):
    Post.objects.filter(pk=post.pk).update(status=status, send_at=timezone.now())
    post.refresh_from_db()
    before = snapshot(post)
    log_in_as(client, "Redattore")
    response = client.post(f"{CHANGELIST}{post.pk}/change/", the_editors_version(post))
    assert response.status_code == 403
    assert snapshot(post) == before


def test_a_redattore_still_changes_drafts(client, post):
    log_in_as(client, "Redattore")
    response = client.post(
        f"{CHANGELIST}{post.pk}/change/", change_form_data(post, body="Nuovo testo")
    )
    assert response.status_code == 302
    post.refresh_from_db()
    assert post.body == "Nuovo testo" and post.status == Post.Status.DRAFT
    assert not AuditEntry.objects.filter(action="edit").exists()  # drafts are not logged


def test_save_as_new_from_a_scheduled_post_only_makes_a_draft(client, scheduled):
    before = snapshot(scheduled)
    editor = log_in_as(client, "Redattore")
    data = {**the_editors_version(scheduled), "_saveasnew": "Save as new"}
    client.post(f"{CHANGELIST}{scheduled.pk}/change/", data)
    assert snapshot(scheduled) == before
    for copy in Post.objects.exclude(pk=scheduled.pk):
        assert copy.status == Post.Status.DRAFT and copy.author == editor


def test_a_redattore_cannot_delete_a_scheduled_post(client, scheduled):
    log_in_as(client, "Redattore")
    assert client.post(f"{CHANGELIST}{scheduled.pk}/delete/", {"post": "yes"}).status_code == 403
    form = {"action": "delete_selected", "_selected_action": [scheduled.pk], "post": "yes"}
    client.post(CHANGELIST, form)
    assert Post.objects.filter(pk=scheduled.pk, status=Post.Status.SCHEDULED).exists()


def _draft_due_later(post: Post) -> Post:
    Post.objects.filter(pk=post.pk).update(send_at=timezone.now() + timedelta(hours=3))
    return post


def _sent_with_a_failure(post: Post) -> Post:
    publishing.post_publish(post=post)
    Delivery.objects.filter(post=post).update(status="failed", last_error_code=131049)
    Post.objects.filter(pk=post.pk).update(status=Post.Status.SENT)
    return post


# Each action on a post in a status where a Pubblicatore could run it.
SETUPS = {
    "send_test": _draft_due_later,
    "send_now": _draft_due_later,
    "schedule": _draft_due_later,
    "unschedule": lambda post: publishing.post_schedule(
        post=post, send_at=timezone.now() + timedelta(days=1)
    ),
    "cancel_sending": lambda post: publishing.post_schedule(
        post=post, send_at=timezone.now() + timedelta(days=1)
    ),
    "resend_failed": _sent_with_a_failure,
}


@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_needs_the_right_to_publish(client, post, settings, action):
    settings.BANDITORE_TEST_NUMBERS = ["393330000001"]
    post = SETUPS[action](post)
    before = snapshot(post), list(Delivery.objects.values_list("status", flat=True))
    entries = AuditEntry.objects.count()
    log_in_as(client, "Redattore")
    assert client.get(f"{CHANGELIST}{post.pk}/confirm/{action}/").status_code == 403
    confirmed = {"action": action, "_selected_action": [post.pk], "confirmed": "yes"}
    client.post(CHANGELIST, {**confirmed, f"version-{post.pk}": "anything"})
    assert (snapshot(post), list(Delivery.objects.values_list("status", flat=True))) == before
    assert AuditEntry.objects.count() == entries
    assert not OutboundMessage.objects.exists()


def test_a_pubblicatore_changes_a_scheduled_post_and_the_log_says_what(
    client, scheduled, publisher
):
    client.force_login(publisher)
    later = timezone.now() + timedelta(days=2)
    data = change_form_data(scheduled, body="Testo corretto", send_at=later)
    response = client.post(f"{CHANGELIST}{scheduled.pk}/change/", data)
    assert response.status_code == 302
    scheduled.refresh_from_db()
    assert scheduled.body == "Testo corretto" and scheduled.status == Post.Status.SCHEDULED
    entry = AuditEntry.objects.get(action="edit")
    assert entry.actor.username == "pubblicatore"
    assert entry.details["post_id"] == scheduled.pk and entry.details["status"] == "scheduled"
    assert set(entry.details["changed"]) == {"body", "send_at"}
    assert entry.details["changed"]["body"] == {"from": "Testo dell'avviso", "to": "Testo corretto"}


def test_a_topic_added_to_a_scheduled_post_is_logged(client, scheduled, publisher):
    client.force_login(publisher)
    every_topic = list(Topic.objects.values_list("pk", flat=True))
    data = change_form_data(scheduled, topics=every_topic)
    assert client.post(f"{CHANGELIST}{scheduled.pk}/change/", data).status_code == 302
    changed = AuditEntry.objects.get(action="edit").details["changed"]
    assert set(changed) == {"topics"} and len(changed["topics"]["to"]) == len(every_topic)


def test_a_draft_changed_after_its_confirmation_page_is_not_sent(client, post):
    log_in_as(client, "Pubblicatore")
    selected = {"action": "send_now", "_selected_action": [post.pk]}
    page = client.post(CHANGELIST, selected).content.decode()
    assert escape(post.body) in page  # the publisher sees what is about to go out
    versions = versions_in(page)

    editor = Client()
    log_in_as(editor, "Redattore")
    changed = change_form_data(post, body="Testo del redattore")
    assert editor.post(f"{CHANGELIST}{post.pk}/change/", changed).status_code == 302

    response = client.post(CHANGELIST, {**selected, **versions, "confirmed": "yes"}, follow=True)
    assert any("changed" in str(m) or "modificat" in str(m) for m in response.context["messages"])
    client.post(CHANGELIST, {**selected, "confirmed": "yes"})  # no version at all: refused too
    post.refresh_from_db()
    assert post.status == Post.Status.DRAFT and not Delivery.objects.exists()
    assert not AuditEntry.objects.filter(action="publish").exists()

    confirm(client, "send_now", post)  # confirmed again, as it now reads
    post.refresh_from_db()
    assert post.status == Post.Status.SENDING and post.body == "Testo del redattore"


def test_a_scheduled_time_changed_after_its_confirmation_page_is_refused(client, post):
    post = _draft_due_later(post)
    log_in_as(client, "Pubblicatore")
    selected = {"action": "schedule", "_selected_action": [post.pk]}
    versions = versions_in(client.post(CHANGELIST, selected).content.decode())
    sooner = timezone.now() + timedelta(minutes=1)
    editor = Client()
    log_in_as(editor, "Redattore")
    editor.post(f"{CHANGELIST}{post.pk}/change/", change_form_data(post, send_at=sooner))
    client.post(CHANGELIST, {**selected, **versions, "confirmed": "yes"})
    post.refresh_from_db()
    assert post.status == Post.Status.DRAFT


def test_a_post_cannot_be_saved_over_a_status_that_changed_meanwhile(rf, post):
    """The form was opened on a draft; by the time it is saved the post is scheduled."""
    post_admin = site._registry[Post]
    editor = User.objects.create_user(username="r", is_staff=True)
    request = rf.post("/")
    request.user = editor
    opened = Post.objects.get(pk=post.pk)
    publishing.post_schedule(post=post, send_at=timezone.now() + timedelta(days=1))
    with pytest.raises(PermissionDenied):
        post_admin.save_model(request, opened, form=None, change=True)
    assert Post.objects.get(pk=post.pk).status == Post.Status.SCHEDULED
