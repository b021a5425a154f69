"""Celery's queues and beat's periodic tasks (deploy/settings.py uses both as they are)."""

from __future__ import annotations

from celery.schedules import crontab

# Three queues, each served by its own worker pool (`make run` and deploy/compose.yaml start
# them), so a citizen's reply never waits behind a broadcast: a sender task works for up to
# BANDITORE_SEND_BUDGET_SECONDS, and all of its pool's slots may be senders during a big send.
#   replies:      conversation replies and the webhook drain that produces them (short tasks)
#   sends:        post senders (banditore.subscribers.send_post_batch)
#   housekeeping: beat's periodic work (due posts and their fan-out, sweeps, prunes, counts)
# Routes are looked up by task name when a task is published, wherever that happens (web, a
# worker, beat); eager mode (tests) runs tasks inline and ignores them.
DEFAULT_QUEUE = "housekeeping"
TASK_ROUTES = {
    "banditore.channel.send_outbound_message": {"queue": "replies"},
    "banditore.channel.process_pending_inbound_events": {"queue": "replies"},
    "banditore.subscribers.send_post_batch": {"queue": "sends"},
    # The weekly digest: its schedule is in the database (admin: Periodic tasks), not below,
    # because beat rewrites the entries listed here at every start and would undo an edit.
    "banditore.subscribers.send_digest": {"queue": "sends"},
    "banditore.channel.prune_inbound_events": {"queue": "housekeeping"},
    "banditore.subscribers.publish_due_posts": {"queue": "housekeeping"},
    "banditore.subscribers.sweep_deliveries": {"queue": "housekeeping"},
    "banditore.subscribers.prune_idempotency_keys": {"queue": "housekeeping"},
    "banditore.subscribers.count_subscribers": {"queue": "housekeeping"},
    "banditore.channel.refresh_phone_facts": {"queue": "housekeeping"},
    "banditore.channel.sync_templates": {"queue": "housekeeping"},
    "banditore.feeds.poll_feed": {"queue": "housekeeping"},
    # Each beat entry of the heartbeat names its queue (options below), overriding this.
    "banditore.deploy.heartbeat": {"queue": "housekeeping"},
    "banditore.deploy.check_alerts": {"queue": "housekeeping"},
}

BEAT_SCHEDULE: dict = {}
# Safety net for webhooks whose wake-up was lost (the view normally wakes the processor).
BEAT_SCHEDULE["channel-process-pending-webhooks"] = {
    "task": "banditore.channel.process_pending_inbound_events",
    "schedule": 60.0,
}
# send-at lives in the database: beat publishes due posts (never a long Celery ETA).
# Processed status webhooks older than BANDITORE_WEBHOOK_ARCHIVE_DAYS are deleted nightly.
BEAT_SCHEDULE["channel-prune-inbound-events"] = {
    "task": "banditore.channel.prune_inbound_events",
    "schedule": crontab(hour=3, minute=37),
}
BEAT_SCHEDULE["subscribers-publish-due-posts"] = {
    "task": "banditore.subscribers.publish_due_posts",
    "schedule": 15.0,
}
# Returns stale in-flight deliveries to the queue and wakes senders whose wake-up was lost.
BEAT_SCHEDULE["subscribers-sweep-deliveries"] = {
    "task": "banditore.subscribers.sweep_deliveries",
    "schedule": 60.0,
}
# The API remembers idempotency keys BANDITORE_API_IDEMPOTENCY_DAYS days; forget older ones nightly.
BEAT_SCHEDULE["subscribers-prune-idempotency-keys"] = {
    "task": "banditore.subscribers.prune_idempotency_keys",
    "schedule": crontab(hour=3, minute=17),
}
# The dashboard's audience-sized figures: subscribers per topic (today's row rewritten, the
# trend and "now") and joins and leaves per day, every 5 minutes (≈ 1.5 s at 1.1M people).
BEAT_SCHEDULE["subscribers-count-subscribers"] = {
    "task": "banditore.subscribers.count_subscribers",
    "schedule": crontab(minute="*/5"),
}
# Message templates from Meta (status, category, wording): rejected or re-categorised ones are
# known before the morning's posts.
BEAT_SCHEDULE["channel-sync-templates"] = {
    "task": "banditore.channel.sync_templates",
    "schedule": crontab(hour=4, minute=23),
}
# The phone number's throughput, messaging limit and quality from Meta (channel.graph.phone).
BEAT_SCHEDULE["channel-refresh-phone-facts"] = {
    "task": "banditore.channel.refresh_phone_facts",
    "schedule": crontab(hour=4, minute=7),
}
# Each worker pool's heartbeat (deploy.ops): a tiny task on its own queue every minute.
for queue in ("replies", "sends", "housekeeping"):
    BEAT_SCHEDULE[f"deploy-heartbeat-{queue}"] = {
        "task": "banditore.deploy.heartbeat",
        "schedule": 60.0,
        "args": [queue],
        "options": {"queue": queue, "expire_seconds": 300},  # DatabaseScheduler's spelling
    }
# Alerts to ADMINS: sending paused, webhook backlog, webhook silence (deploy.alerts).
BEAT_SCHEDULE["deploy-check-alerts"] = {
    "task": "banditore.deploy.check_alerts",
    "schedule": 60.0,
}
