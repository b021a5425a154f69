"""Alerts without extra software: an e-mail to ADMINS and an ERROR log line, once per incident.

`alerts_check()` runs every minute (banditore.deploy.check_alerts on the housekeeping queue). An
incident is remembered in Redis while it lasts, so it is reported when it starts, not every
minute; when it ends the key goes and an INFO line says so, and the next occurrence is a new
incident (and the budget: once a month at 80 %, budget_alert). The incidents:
- sending paused: Meta answered an account-level error (expired token, restricted number) and
  nothing is sent until a person fixes it and resumes in the admin;
- webhook backlog: a received webhook has waited more than BANDITORE_ALERT_BACKLOG_MINUTES
  (the replies worker pool is down or stuck: citizens get no answers);
- webhook silence: a post is sending but no webhook arrived for
  BANDITORE_ALERT_WEBHOOK_SILENCE_MINUTES (Meta cannot reach the webhook: DNS, TLS, the proxy,
  or the app's subscription in Meta's App Dashboard), so no delivery is ever confirmed;
- phone number drop: Meta lowered the number's quality rating, messaging limit or throughput
  (channel.graph.phone, read nightly), until an editor dismisses the notice in the admin.
"""

from __future__ import annotations

import logging
import smtplib
from datetime import timedelta

from django.conf import settings
from django.core.mail import mail_admins
from django.utils import timezone

from channel.redis_client import redis_client
from deploy.ops import ops_status
from subscribers.delivery.budget import ALERT_SHARE, budget_state
from subscribers.delivery.costs import month_start

logger = logging.getLogger(__name__)

INCIDENT_KEY = "banditore:alert:{name}"
INCIDENTS = ("sending-paused", "webhook-backlog", "webhook-silence", "phone-number-drop")


def current_incidents(status: dict) -> dict[str, str]:
    """Incident name → what an administrator reads, for every incident going on now."""
    incidents = {}
    paused = status["sending_paused"]
    if paused is not None:
        incidents["sending-paused"] = (
            f"Sending is paused since {paused['since']:%Y-%m-%d %H:%M %Z}: Meta error "
            f"{paused['error_code']}: {paused['reason']}. Fix the cause, then resume sending "
            "in the admin."
        )
    webhooks = status["webhooks"]
    backlog_limit = settings.BANDITORE_ALERT_BACKLOG_MINUTES * 60
    if (webhooks["oldest_age_seconds"] or 0) > backlog_limit:
        incidents["webhook-backlog"] = (
            f"{webhooks['backlog']} received webhooks wait to be processed, the oldest for "
            f"{webhooks['oldest_age_seconds'] / 60:.0f} minutes: is the replies worker running?"
        )
    silence = timedelta(minutes=settings.BANDITORE_ALERT_WEBHOOK_SILENCE_MINUTES)
    now, last = status["time"], webhooks["last_received_at"]
    started = [post["published_at"] for post in status["posts_sending"] if post["published_at"]]
    # Silent since the later of the last webhook and the start of the earliest post in flight:
    # a post that has just started has had no time to bring statuses back.
    quiet_since = max(filter(None, [last, min(started, default=None)]), default=None)
    if started and quiet_since is not None and now - quiet_since > silence:
        incidents["webhook-silence"] = (
            f"{len(started)} posts are sending but no webhook arrived since "
            f"{quiet_since:%Y-%m-%d %H:%M %Z}: can Meta reach the webhook URL?"
        )
    phone = status.get("phone_number") or {}
    if phone.get("drop_notice"):  # until an editor dismisses the notice in the admin
        incidents["phone-number-drop"] = (
            f"Meta lowered the WhatsApp number's standing: {phone['drop_notice']} Now: quality "
            f"{phone['quality_rating'] or '?'}, messaging limit {phone['messaging_limit'] or '?'}"
            f", {phone['messages_per_second']} messages/s. Posts go out more slowly; check "
            "recent templates and posts for what citizens blocked or reported."
        )
    return incidents


def budget_alert() -> bool:
    """Once a month, when what Meta billed this month reaches 80 % of
    BANDITORE_MONTHLY_BUDGET_EUR: an e-mail to ADMINS. True when it was sent now."""
    state = budget_state()
    if state.spent_share is None or state.spent_share < ALERT_SHARE:
        return False
    key = INCIDENT_KEY.format(name=f"budget-80:{month_start():%Y-%m}")
    if not redis_client().set(key, timezone.now().isoformat(), nx=True, ex=40 * 86400):
        return False  # already told this month
    text = (
        f"This month's WhatsApp spending has reached {state.spent_share:.0%} of the budget: "
        f"€ {state.spent} of € {state.budget} (posts being sent will add about "
        f"€ {state.committed}). Non-urgent posts that do not fit in what is left are refused."
    )
    logger.error("ALERT budget-80: %s", text)
    try:
        mail_admins("Banditore: 80% of the monthly budget", text)
    except (OSError, smtplib.SMTPException):
        logger.exception("the alert mail to ADMINS could not be sent")
    return True


def alerts_check() -> list[str]:
    """Report every incident that began since the last check; return their names."""
    incidents = current_incidents(ops_status())
    client = redis_client()
    started = ["budget-80"] if budget_alert() else []
    for name in INCIDENTS:
        key = INCIDENT_KEY.format(name=name)
        if name not in incidents:
            if client.delete(key):
                logger.info("alert over: %s", name)
            continue
        if not client.set(key, timezone.now().isoformat(), nx=True):
            continue  # already reported, still going on
        started.append(name)
        logger.error("ALERT %s: %s", name, incidents[name])
        try:
            mail_admins(f"Banditore: {name}", incidents[name])
        except (OSError, smtplib.SMTPException):
            logger.exception("the alert mail to ADMINS could not be sent")
    return started
