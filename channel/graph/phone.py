"""What Meta says about the phone number: throughput, messaging limit, quality, display name.

Read with GET /{phone-number-id}?fields=… nightly (banditore.channel.refresh_phone_facts) and
when sending resumes after a pause, kept in channel.models.PhoneNumberFacts. The rate limiter
and the planner use `effective_mps()` and `effective_tier()`: Meta's figures, never above the
settings WHATSAPP_MPS / WHATSAPP_MESSAGING_TIER when those are set (caps), and the settings (or
Meta's defaults, 80/s and 2,000 people a day) until Meta has answered.
- throughput: https://developers.facebook.com/documentation/business-messaging/whatsapp/throughput
- messaging limit: https://developers.facebook.com/docs/whatsapp/messaging-limits
- quality rating, name status: https://developers.facebook.com/docs/whatsapp/cloud-api/reference/phone-numbers
"""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from channel.graph.rest import graph_request, graph_url
from channel.models import PhoneNumberFacts

FIELDS = "throughput,whatsapp_business_manager_messaging_limit,quality_rating,name_status"
# Messages per second by Meta's throughput level; 80 is every number's default.
THROUGHPUT_MPS = {"STANDARD": 80, "HIGH": 1000}
DEFAULT_MPS = 80
# Unique people reached outside the 24-hour window per moving 24 h; None: unlimited. TIER_1K is
# the older name some accounts still report.
TIER_LIMITS: dict[str, int | None] = {
    "TIER_250": 250,
    "TIER_1K": 1000,
    "TIER_2K": 2000,
    "TIER_10K": 10000,
    "TIER_100K": 100000,
    "TIER_UNLIMITED": None,
}
DEFAULT_TIER = 2000
# Higher is better; NA/UNKNOWN (not rated yet) are not ranked, so never a drop.
QUALITY_RANK = {"RED": 1, "YELLOW": 2, "GREEN": 3}
_UNLIMITED = 10**12  # for comparing tiers


def phone_facts() -> PhoneNumberFacts | None:
    """What Meta last said, or None when it never answered."""
    return PhoneNumberFacts.objects.filter(id=1, checked_at__isnull=False).first()


def _setting_tier() -> int | None | str:
    """The setting: a number, None for "unlimited", or "" when unset."""
    tier = str(settings.WHATSAPP_MESSAGING_TIER or "")
    if tier == "":
        return ""
    return None if tier == "unlimited" else int(tier)


def effective_mps(facts: PhoneNumberFacts | None = None) -> int:
    """Messages per second for the number: Meta's throughput, capped by WHATSAPP_MPS."""
    facts = facts if facts is not None else phone_facts()
    cap = int(settings.WHATSAPP_MPS or 0)
    meta = THROUGHPUT_MPS.get(facts.throughput_level) if facts else None
    if meta is None:
        return cap or DEFAULT_MPS
    return min(meta, cap) if cap else meta


def effective_tier(facts: PhoneNumberFacts | None = None) -> int | None:
    """People outside the window per 24 h (None: unlimited): Meta's messaging limit, capped by
    WHATSAPP_MESSAGING_TIER."""
    facts = facts if facts is not None else phone_facts()
    cap = _setting_tier()
    known = facts is not None and facts.messaging_limit in TIER_LIMITS
    if not known:
        return DEFAULT_TIER if cap == "" else cap
    meta = TIER_LIMITS[facts.messaging_limit]
    if cap == "" or cap is None:
        return meta
    return cap if meta is None else min(meta, cap)


def _text(value) -> str:
    return value.strip().upper()[:32] if isinstance(value, str) else ""


def _parse(body: dict) -> dict[str, str]:
    """Meta's answer → our columns; shapes vary between versions, so each is read leniently."""
    throughput = body.get("throughput")
    level = throughput.get("level") if isinstance(throughput, dict) else throughput
    limit = body.get("whatsapp_business_manager_messaging_limit")
    if isinstance(limit, dict):  # some versions wrap it: {"current_limit": "TIER_2K"}
        limit = next((v for v in limit.values() if isinstance(v, str)), "")
    return {
        "throughput_level": _text(level),
        "messaging_limit": _text(limit) or _text(body.get("messaging_limit_tier")),
        "quality_rating": _text(body.get("quality_rating")),
        "name_status": _text(body.get("name_status")),
    }


def _drops(before: PhoneNumberFacts, after: dict[str, str]) -> list[str]:
    """What got worse, in words for the editors."""
    drops = []
    old_q, new_q = (
        QUALITY_RANK.get(before.quality_rating),
        QUALITY_RANK.get(after["quality_rating"]),
    )
    if old_q and new_q and new_q < old_q:
        drops.append(
            f"quality rating fell from {before.quality_rating} to {after['quality_rating']}"
        )
    old_t, new_t = before.messaging_limit, after["messaging_limit"]
    if old_t in TIER_LIMITS and new_t in TIER_LIMITS:
        if (TIER_LIMITS[new_t] or _UNLIMITED) < (TIER_LIMITS[old_t] or _UNLIMITED):
            drops.append(f"messaging limit fell from {old_t} to {new_t}")
    old_level, new_level = before.throughput_level, after["throughput_level"]
    if old_level == "HIGH" and new_level == "STANDARD":
        drops.append("throughput fell from HIGH (1,000/s) to STANDARD (80/s)")
    return drops


def phone_facts_refresh() -> tuple[PhoneNumberFacts, list[str]]:
    """Ask Meta, store the answer; returns the facts and what dropped since the last answer
    (a drop is also kept as `drop_notice` until an editor dismisses it). A failed request keeps
    the last facts and records the error."""
    PhoneNumberFacts.objects.get_or_create(id=1)
    before = PhoneNumberFacts.objects.get(id=1)
    answer = graph_request(
        "GET", graph_url(settings.WHATSAPP_PHONE_NUMBER_ID), params={"fields": FIELDS}
    )
    now = timezone.now()
    if not answer.ok:
        PhoneNumberFacts.objects.filter(id=1).update(
            check_error=(answer.error_text or f"HTTP {answer.status}")[:2000]
        )
        return PhoneNumberFacts.objects.get(id=1), []
    after = _parse(answer.body)
    drops = _drops(before, after) if before.checked_at else []
    update = {**after, "checked_at": now, "check_error": ""}
    if drops:
        said = "; ".join(drops)
        update |= {"drop_notice": said[0].upper() + said[1:] + ".", "drop_at": now}
    PhoneNumberFacts.objects.filter(id=1).update(**update)
    return PhoneNumberFacts.objects.get(id=1), drops


def drop_dismiss() -> bool:
    """An editor read the drop notice: hide it (the alert e-mail was sent once already)."""
    return bool(
        PhoneNumberFacts.objects.filter(id=1).exclude(drop_notice="").update(drop_notice="")
    )
