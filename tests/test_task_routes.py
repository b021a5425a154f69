"""Every task has a queue, and every queue a worker pool (make run and deploy/compose.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from django.conf import settings

import channel.tasks
import subscribers.tasks
from deploy.__main__ import WORKER_POOLS
from deploy.celery import app

ROOT = Path(__file__).resolve().parent.parent


def _our_tasks() -> set[str]:
    assert channel.tasks and subscribers.tasks  # registered with the app on import
    app.loader.import_default_modules()  # every installed app's tasks, as a worker finds them
    return {name for name in app.tasks if name.startswith("banditore.")}


def test_every_task_is_routed_and_every_route_names_a_task():
    assert set(settings.CELERY_TASK_ROUTES) == _our_tasks()


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        ("banditore.channel.send_outbound_message", "replies"),
        ("banditore.channel.process_pending_inbound_events", "replies"),
        ("banditore.subscribers.send_post_batch", "sends"),
        ("banditore.subscribers.publish_due_posts", "housekeeping"),
        ("banditore.channel.prune_inbound_events", "housekeeping"),
    ],
)
def test_celery_publishes_each_task_to_its_queue(task, queue):
    assert app.amqp.router.route({}, task)["queue"].name == queue


def test_every_queue_is_served_by_one_pool_of_its_own():
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    served = [pool.queue for pool in WORKER_POOLS.values()]
    assert sorted(served) == sorted(routed | {settings.CELERY_TASK_DEFAULT_QUEUE})
    assert set(served) == {"replies", "sends", "housekeeping"}


def test_compose_starts_the_same_pools_as_make_run():
    services = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())["services"]
    pools = [s["command"][1] for s in services.values() if s.get("command", [""])[0] == "worker"]
    assert sorted(pools) == sorted(WORKER_POOLS)
    entrypoint = (ROOT / "deploy" / "entrypoint.sh").read_text()
    for name, pool in WORKER_POOLS.items():
        assert name == pool.queue
        assert (
            f"{name}) kind={pool.pool} concurrency={pool.concurrency} niceness={pool.niceness} ;;"
            in entrypoint
        )
