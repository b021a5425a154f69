"""An editor's day in a real Chromium, against the fake Graph API.

A Pubblicatore logs in, composes a post with an image, reads the plan, sends a test to the staff
phone, sends the post, watches the progress reach 100 % and resends to the failed people only.

Sending runs as in production, outside the web request: Celery is not eager here, and a
background thread plays the worker (the sender's drain loop and the webhook processor), so the
page shows the progress moving. Meta's side is the fake: an unreachable number fails at once
(131026, not worth resending), and a messaging-limit tier of 2 admits two of the four people who
need the template; the other two are accepted, then fail by status webhook (131049, worth
resending once the limit frees).
"""

from __future__ import annotations

import importlib
import threading
import time

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from channel.models import OutboundMessage
from channel.webhook.drain import process_pending_inbound_events
from subscribers.delivery import sending
from subscribers.models import Delivery
from tests.browser.conftest import TIMEOUT_MS, screenshot
from tests.factories import make_subscriber, make_template, make_topic
from tests.subscribers.delivery.helpers import webhooks_to
from topics.models import AuditEntry, Post

STAFF = "393330009999"
UNREACHABLE = "393330000666"
BODY = "Domani, 3 dicembre, le scuole restano chiuse ❄️\nAggiornamenti sul sito del Comune."
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 256


class Worker(threading.Thread):
    """What Celery workers do in production: send posts that are sending, apply webhooks."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                sending_now = Post.objects.filter(status=Post.Status.SENDING)
                for post_id in sending_now.values_list("pk", flat=True):
                    sending.drain_post(post_id, budget_seconds=2)
                process_pending_inbound_events()
                self.stopping.wait(0.2)
        except BaseException as error:  # reported by the test, not lost in the thread
            self.error = error
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)
        if self.error:
            raise self.error


@pytest.fixture
def worker(settings, redis_conn):
    from deploy.celery import app

    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False  # Celery messages only wake workers; ours polls
    settings.BANDITORE_SEND_BATCH = 1
    settings.BANDITORE_MAX_ATTEMPTS = 1
    thread = Worker()
    thread.start()
    yield thread
    thread.stop()
    app.conf.task_always_eager = eager


@pytest.fixture
def newsroom(settings, live_server, fake_graph, tmp_path):
    """Six people follow "Scuole": one wrote today (free-form with the image), four get the
    template, one is not on WhatsApp. One staff phone is on the test list."""
    settings.MEDIA_ROOT = tmp_path
    settings.WHATSAPP_MPS = 1000
    settings.WHATSAPP_MESSAGING_TIER = "unlimited"
    settings.BANDITORE_TEST_NUMBERS = [STAFF]
    fake_graph.register_template("avviso_comune", "it", "utility", body_params=2)
    make_template()
    schools = make_topic(name_it="Scuole", slug="scuole")
    recent = make_subscriber(topics=[schools], last_inbound_at=timezone.now())
    fake_graph.mark_inbound(recent.wa_id)
    for _ in range(4):
        make_subscriber(topics=[schools])
    make_subscriber(topics=[schools], wa_id=UNREACHABLE)
    make_subscriber(wa_id=STAFF, last_inbound_at=timezone.now())  # the editor's own phone
    fake_graph.mark_inbound(STAFF)
    # Only now the status webhooks: the messages above were for the fake's window only.
    webhooks_to(live_server, fake_graph, latency_ms=300, tier=2, unreachable=[UNREACHABLE])
    user = User.objects.create_user(username="giulia", password="pw-giulia-2026", is_staff=True)
    user.groups.add(_role("Pubblicatore"))
    return schools


def _role(name: str) -> Group:
    """The group the migration creates; made again when an earlier transactional test has
    flushed the tables (permissions come back by themselves, groups do not)."""
    roles = importlib.import_module("subscribers.migrations.0004_editor_groups").ROLES
    group, created = Group.objects.get_or_create(name=name)
    if created:
        for code in roles[name]:
            app_label, codename = code.split(".")
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
    return group


def _log_in(page, live_server) -> None:
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "giulia")
    page.fill("#id_password", "pw-giulia-2026")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")


def _compose(page, live_server) -> Post:
    page.goto(f"{live_server.url}/admin/topics/post/add/")
    page.fill("#id_title", "Scuole chiuse per neve")
    page.fill("#id_body", BODY)
    counter = page.locator("#post-body-counter")
    assert counter.get_attribute("data-length") == str(len(BODY))
    assert "4096" in counter.inner_text().replace(".", "").replace(" ", "")
    page.select_option("#id_topics_from", label="Scuole")
    page.click("#id_topics_add")
    page.set_input_files(
        "#id_media_file", {"name": "neve.png", "mimeType": "image/png", "buffer": PNG}
    )
    page.click("input[name=_continue]")
    page.wait_for_selector("#post-plan")
    return Post.objects.get(title="Scuole chiuse per neve")


def _confirm(page, action: str) -> str:
    page.click(f"#post-action-{action}")
    page.wait_for_selector("#confirm-yes")
    reach = page.locator("#confirm-rows [data-testid=reach]").first.inner_text()
    page.click("#confirm-yes")
    page.wait_for_selector("#post_form")
    return reach


def _count(page, name: str) -> int:
    return int(page.locator(f"#post-progress [data-count={name}]").inner_text())


def _wait_for_counts(page, post: Post, **expected: int) -> None:
    """The panel refreshes itself while sending; late status webhooks need a reload."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        page.wait_for_function(
            "() => document.getElementById('progress-percent').textContent.trim() === '100'"
        )
        if all(_count(page, name) == n for name, n in expected.items()):
            return
        if time.monotonic() > deadline:
            counts = {name: _count(page, name) for name in expected}
            raise AssertionError(f"progress shows {counts}, expected {expected}")
        page.wait_for_timeout(500)
        page.reload()


def test_an_editors_day(transactional_db, live_server, fake_graph, newsroom, worker, browser_page):
    page = browser_page
    _log_in(page, live_server)
    post = _compose(page, live_server)
    assert post.media_kind == Post.MediaKind.IMAGE and post.status == Post.Status.DRAFT

    # The plan: 6 people, 1 inside the 24-hour window, 5 need the template.
    assert page.locator("#post-plan b").first.inner_text() == "6"
    assert "avviso_comune" in page.locator("#post-plan").inner_text()
    assert "neve.png" in page.locator("#post-preview").inner_text()

    # A test to the staff phone: the image message and the template, nobody else.
    assert _confirm(page, "send_test").startswith("1 ")
    notes = page.locator("ul.messagelist").inner_text()
    assert notes.count("••99") == 2
    to_staff = [entry["payload"]["type"] for entry in fake_graph.outbox(to=STAFF)]
    assert sorted(to_staff) == ["image", "template"]
    assert len(fake_graph.outbox()) == 2 and not Delivery.objects.exists()

    # Send for real, and watch the progress bar while the worker sends.
    assert _confirm(page, "send_now").startswith("6 ")
    page.wait_for_selector("#post-progress")
    _wait_for_counts(page, post, reach=6, delivered=3, failed=3)
    post.refresh_from_db()
    assert post.status == Post.Status.SENT
    failures = page.locator("#progress-failures").inner_text()
    assert "131026" in failures and "131049" in failures
    page.reload()  # the results by topic are drawn with the page, not refreshed live
    results = page.locator("#post-results tr[data-topic=scuole]")
    counts = {
        n: results.locator(f"[data-count={n}]").inner_text() for n in ("recipients", "failed")
    }
    assert counts == {"recipients": "6", "failed": "3"}
    screenshot(page, "editor-day-progress.png")

    # Resend to the failed only: the two held back by the tier go again, the number that is
    # not on WhatsApp is skipped.
    fake_graph.configure(tier=None)
    assert _confirm(page, "resend_failed").startswith("2 ")
    _wait_for_counts(page, post, reach=6, delivered=5, failed=1)
    page.reload()
    screenshot(page, "editor-day-resent.png")

    assert len(fake_graph.outbox(to=UNREACHABLE)) == 0
    per_person = [entry["to"] for entry in fake_graph.outbox() if entry["to"] != STAFF]
    assert len(per_person) == 7  # 5 + the 2 resent; the unreachable one was refused
    assert OutboundMessage.objects.filter(lane="test").count() == 2
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"test_send", "publish", "resend_failed"} <= actions

    page.click("#post-recipients")
    page.wait_for_selector("#recipients")
    assert page.locator(".recipient-number").count() == 6
    assert UNREACHABLE not in page.content()

    response = page.goto(f"{live_server.url}{reverse('admin:subscribers_dashboard')}")
    assert response is not None and response.ok
    screenshot(page, "editor-day-dashboard.png")
