"""Crash safety and chaos, end to end: real PostgreSQL, Redis, the fake Graph API, and Meta's
status webhooks arriving at the live webhook. Every recipient gets the post exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from channel.models import MessageTemplate
from subscribers.delivery import sending, sweeper
from subscribers.models import Delivery
from tests.markers import needs_postgresql
from tests.subscribers.delivery.helpers import callbacks, sending_post
from topics.models import Post

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def world(fake_graph, live_server, settings, redis_conn):
    settings.WHATSAPP_MPS = 1000
    settings.WHATSAPP_MESSAGING_TIER = "unlimited"
    settings.BANDITORE_SEND_BATCH = 25
    fake_graph.configure(
        webhook_url=f"{live_server.url}/whatsapp/webhook/",
        status_batch_size=50,
        status_delay_ms=20,
        latency_ms=15,
        mps=1000,  # a number with Meta's highest throughput, not the default 80/s
    )
    fake_graph.register_template("avviso", "it", "utility", body_params=1)
    MessageTemplate.objects.create(
        name="avviso",
        language="it",
        category="utility",
        status="approved",
        body_text="{{1}}",
        body_parameters=["title"],
        is_default=True,
    )
    return fake_graph


def recover_and_finish(fake_graph, post: Post, settings, rounds: int = 40) -> None:
    """What production does over minutes: statuses settle in-flight rows, the sweeper returns
    the rest after the settle time, senders drain the queue."""
    settings.BANDITORE_SETTLE_SECONDS = 0
    for _ in range(rounds):
        time.sleep(0.2)  # requests still inside the fake's latency are accepted meanwhile
        fake_graph.flush_statuses()
        sweeper.sweep()
        Delivery.objects.filter(post=post, status="queued").update(next_attempt_at=None)
        sending.drain_post(post.pk, budget_seconds=20)
        post.refresh_from_db()
        if post.status == Post.Status.SENT:
            return
    raise AssertionError(f"post did not finish: {post.status}")


def assert_exactly_once(fake_graph, post: Post, recipients: int) -> None:
    fake_graph.flush_statuses()
    sent = callbacks(fake_graph)
    duplicates = {k: n for k, n in sent.items() if n > 1}
    assert duplicates == {}
    assert len(sent) == recipients
    assert set(sent) == set(Delivery.objects.filter(post=post).values_list("id", flat=True))


def worker_process(post: Post) -> subprocess.Popen:
    env = dict(os.environ)
    database = django_settings.DATABASES["default"]
    if database["ENGINE"].endswith("postgresql"):
        env["DATABASE_URL"] = (
            f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/"
            f"{database['NAME']}"
        )
    env |= {
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "REDIS_URL": django_settings.REDIS_URL,
        "WHATSAPP_GRAPH_URL": django_settings.WHATSAPP_GRAPH_URL,
        "WHATSAPP_MPS": "300",  # steady progress to kill it in the middle of
        "WHATSAPP_MESSAGING_TIER": "unlimited",
        "BANDITORE_SEND_BATCH": "25",
    }
    code = (
        "import django; django.setup(); from subscribers.delivery.sending import drain_post; "
        f"drain_post({post.pk}, budget_seconds=120)"
    )
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)


def kill_after(worker: subprocess.Popen, fake_graph, accepted: int) -> None:
    """kill -9 once Meta has accepted `accepted` messages in all: a moment mid-send however
    fast the machine is (a fixed sleep may find the worker done, or not yet started)."""
    deadline = time.monotonic() + 60
    while worker.poll() is None and time.monotonic() < deadline:
        if fake_graph.stats()["accepted"] >= accepted:
            break
        time.sleep(0.01)
    worker.send_signal(signal.SIGKILL)
    worker.wait()


@needs_postgresql
def test_kill_9_mid_send_loses_nothing_and_duplicates_nothing(world, settings):
    post = sending_post(400)
    rng = random.Random(7)
    for crash in range(3):  # three crashes at random moments
        kill_after(worker_process(post), world, rng.randint(60, 100) * (crash + 1))
    connection.close()
    assert Delivery.objects.filter(post=post, status="queued").exists()  # it was mid-send
    recover_and_finish(world, post, settings)
    assert_exactly_once(world, post, 400)


def test_chaos_run_ends_with_everyone_delivered_once(world, settings):
    """10 % 5xx/timeouts, 5 % 130429, 2 % 131056."""
    world.configure(
        seed=11,
        error_5xx_rate=0.05,
        timeout_rate=0.05,
        hang_seconds=0.3,
        fault_after_accept_rate=0.5,
        error_130429_rate=0.05,
        error_131056_rate=0.02,
    )
    post = sending_post(300)
    sending.drain_post(post.pk, budget_seconds=30)
    recover_and_finish(world, post, settings)
    assert_exactly_once(world, post, 300)
    world.flush_statuses()
    counts = Counter(Delivery.objects.filter(post=post).values_list("status", flat=True))
    assert counts == {"delivered": 300}
    stats = world.stats()
    assert stats["faults"]["5xx"] and stats["faults"]["timeout"]
    assert stats["rejected"]["130429"] and stats["rejected"]["131056"]
