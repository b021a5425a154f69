"""Polling a feed: each new item becomes one post (a draft, or sent at once for a trusted feed).

One poll of a feed at a time (its row is locked for the poll; a second poll finds it locked
and leaves), and the (feed, key) unique constraint holds even if that were bypassed: an item
becomes at most one post, ever, whatever the feed reorders, edits or republishes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from subscribers.delivery.publishing import PublishError, post_cancel, post_publish
from subscribers.feeds import cap
from subscribers.feeds.area import area_matches, council_area
from subscribers.feeds.fetching import FeedError, feed_fetch
from subscribers.feeds.models import Feed, FeedItem
from subscribers.feeds.news import NewsItem, item_key, news_items, refuse_hostile_xml
from subscribers.feeds.text import cut_at_word
from topics.audit import record_audit
from topics.models import POST_BODY_MAX, Post

logger = logging.getLogger(__name__)

TITLE_MAX = 200  # Post.title
CAP_ALERTS_PER_POLL = 20  # an index of alerts: the newest this many are fetched each poll
PREFIXES = {  # what an update or a cancellation says first, by the alert's language
    "it": {"Update": "Aggiornamento: ", "Cancel": "Revocato: "},
    "en": {"Update": "Update: ", "Cancel": "Cancelled: "},
}


@dataclass
class PollResult:
    posts: list[int] = field(default_factory=list)
    skipped: int = 0
    unchanged: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Draft:
    """What a new item becomes: the post's fields, and whether it goes out at once."""

    key: str
    title: str
    body: str
    link: str
    urgent: bool = False
    expires_at: object = None
    title_en: str = ""  # CAP: the alert's English block, for people who chose English
    body_en: str = ""
    source: str = ""  # the address the item was read from (CAP alerts listed in an index)
    cancels: tuple[str, ...] = ()  # CAP: identifiers of earlier alerts this one revokes


def feed_poll(feed_id: int) -> PollResult | None:
    """Poll the feed now. None when it is inactive, gone, or being polled by someone else.

    A feed's failure is recorded on the feed (last error, when) and logged with its name; it
    never stops the other feeds, and what it broke is rolled back whole.
    """
    try:
        with transaction.atomic():
            feed = (
                Feed.objects.select_for_update(skip_locked=True)
                .filter(pk=feed_id, is_active=True)
                .first()
            )
            if feed is None:
                return None
            result = _poll(feed)
    except FeedError as error:
        logger.warning("Feed %r (#%s): %s", _name(feed_id), feed_id, error)
        _record_error(feed_id, str(error))
        return PollResult(notes=[str(error)])
    except Exception as error:
        logger.exception("Feed %r (#%s) could not be polled", _name(feed_id), feed_id)
        _record_error(
            feed_id,
            _("Unexpected error (%(error)s); the log has details.")
            % {"error": type(error).__name__},
        )
        return PollResult(notes=[type(error).__name__])
    return result


def _name(feed_id: int) -> str:
    return Feed.objects.filter(pk=feed_id).values_list("name", flat=True).first() or "?"


def _record_error(feed_id: int, message: str) -> None:
    now = timezone.now()
    Feed.objects.filter(pk=feed_id).update(
        last_error=message[:500], last_error_at=now, last_polled_at=now
    )


def _poll(feed: Feed) -> PollResult:
    now = timezone.now()
    fetched = feed_fetch(feed.url, etag=feed.etag, last_modified=feed.last_modified)
    result = PollResult()
    if fetched.body is None:
        result.unchanged = True
    else:
        drafts = (
            _cap_drafts(feed, fetched.body, result)
            if feed.kind == Feed.Kind.CAP
            else (_news_drafts(feed, fetched.body))
        )
        first_poll = not FeedItem.objects.filter(feed=feed).exists()
        for position, draft in enumerate(drafts):
            # A news feed's first poll may list months of items: only the newest goes out at
            # once; the older ones wait as drafts for an editor, so subscribers are not flooded.
            at_once = feed.mode == Feed.Mode.PUBLISH and not (
                first_poll and feed.kind == Feed.Kind.NEWS and position < len(drafts) - 1
            )
            _take(feed, draft, at_once=at_once, result=result, now=now)
    Feed.objects.filter(pk=feed.pk).update(
        etag=fetched.etag,
        last_modified=fetched.last_modified,
        last_polled_at=now,
        last_error="; ".join(result.notes)[:500],
        last_error_at=now if result.notes else None,
        **({"last_new_item_at": now} if result.posts else {}),
    )
    if result.posts:
        Feed.objects.filter(pk=feed.pk).update(items_taken=F("items_taken") + len(result.posts))
    return result


def _news_drafts(feed: Feed, body: bytes) -> list[Draft]:
    return [_news_draft(item) for item in news_items(body)]


def _news_draft(item: NewsItem) -> Draft:
    title = cut_at_word(item.title, TITLE_MAX)
    # The message is "*title*\n\nbody\n\nlink": the body gets what is left of WhatsApp's 4,096.
    room = POST_BODY_MAX - len(title) - len(item.link) - 8
    return Draft(key=item.key, title=title, body=cut_at_word(item.summary, room), link=item.link)


def _cap_drafts(feed: Feed, body: bytes, result: PollResult) -> list[Draft]:
    root = cap.parse_xml(body)
    if cap.is_alert(root):
        alerts = [(cap.cap_alert(root), "")]
    else:  # an index (Atom or RSS) listing alerts by address, as civil-protection sites do
        refuse_hostile_xml(body)
        alerts = []
        known = set(FeedItem.objects.filter(feed=feed).values_list("source", flat=True))
        links = [item.link for item in news_items(body) if item.link and item.link not in known]
        for link in links[-CAP_ALERTS_PER_POLL:]:
            try:
                fetched = feed_fetch(link)
                alerts.append((cap.cap_alert(cap.parse_xml(fetched.body or b"")), link))
            except FeedError as error:
                result.notes.append(f"{link}: {error}")
    area = council_area(settings.BANDITORE_CAP_AREA_CODES, settings.BANDITORE_CAP_AREA_POLYGON)
    rule = cap.parse_urgent_rule(settings.BANDITORE_CAP_URGENT)
    drafts = []
    for alert, source in alerts:
        info = cap.preferred_info(alert)
        code, reason = _cap_skip_reason(alert, info, area)
        if code:
            _skip(feed, key=item_key(alert.identifier), title=alert.identifier, reason=reason,
                  source=source, result=result, other_area=code == "area")  # fmt: skip
            continue
        link = info.web if info.web.startswith(("https://", "http://")) else ""
        title, text = _alert_text(alert, info, link)
        english = cap.preferred_info(alert, ("en",))
        title_en, text_en = ("", "")
        if english is not None and english is not info and _language(english) == "en":
            title_en, text_en = _alert_text(alert, english, link)
        drafts.append(
            Draft(
                key=item_key(alert.identifier),
                title=title,
                body=text,
                title_en=title_en,
                body_en=text_en,
                link=link,
                urgent=cap.is_urgent(info, rule),
                expires_at=info.expires,
                source=source,
                cancels=alert.references if alert.msg_type == "Cancel" else (),
            )
        )
    return drafts


def _language(info: cap.CapInfo) -> str:
    return info.language.lower().split("-")[0]


def _alert_text(alert: cap.CapAlert, info: cap.CapInfo, link: str) -> tuple[str, str]:
    """Title and text of a post from one <info> block, in its language, within the limits."""
    prefix = PREFIXES["it" if _language(info) == "it" else "en"].get(alert.msg_type, "")
    title = cut_at_word(prefix + (info.headline or info.event), TITLE_MAX)
    text = "\n\n".join(part for part in (info.description, info.instruction) if part)
    return title, cut_at_word(text, POST_BODY_MAX - len(title) - len(link) - 8)


def _cap_skip_reason(alert: cap.CapAlert, info, area) -> tuple[str, str]:
    """Why an alert makes no post: (code, words for the editor); ("", "") when it makes one."""
    if alert.status != "Actual":
        return "status", _("status %(status)s: not a real alert") % {"status": alert.status or "—"}
    if alert.msg_type not in ("Alert", "Update", "Cancel"):
        return "type", _("message type %(type)s") % {"type": alert.msg_type or "—"}
    if alert.scope and alert.scope != "Public":
        return "scope", _("scope %(scope)s: not for the public") % {"scope": alert.scope}
    if info is None or not (info.headline or info.event):
        return "headline", _("no headline")
    if not area_matches(area, info.area):
        return "area", _("another area")
    if info.expires and info.expires <= timezone.now():
        return "expired", _("expired")
    return "", ""


def _skip(
    feed: Feed,
    *,
    key: str,
    title: str,
    reason: str,
    source: str,
    result: PollResult,
    other_area: bool,
) -> None:
    _created, item = _claim(feed, key=key, title=title, source=source, skipped=reason)
    if item is not None:
        result.skipped += 1
        if other_area:
            Feed.objects.filter(pk=feed.pk).update(alerts_ignored=F("alerts_ignored") + 1)


def _claim(feed: Feed, *, key: str, title: str, source: str, skipped: str = ""):
    """The item's row if this poll is the first to see the key, else None."""
    if FeedItem.objects.filter(feed=feed, key=key).exists():
        return False, None
    try:
        with transaction.atomic():
            item = FeedItem.objects.create(
                feed=feed, key=key, title=title[:200], source=source[:1000], skipped=skipped
            )
    except IntegrityError:  # taken by a concurrent poll after all
        return False, None
    return True, item


def _take(feed: Feed, draft: Draft, *, at_once: bool, result: PollResult, now) -> None:
    with transaction.atomic():
        _created, item = _claim(feed, key=draft.key, title=draft.title, source=draft.source)
        if item is None:
            return
        post = Post.objects.create(
            title=draft.title,
            body=draft.body,
            title_en=draft.title_en,
            body_en=draft.body_en,
            link=draft.link,
            is_urgent=draft.urgent,
            expires_at=draft.expires_at,
            status=Post.Status.DRAFT,
        )
        post.topics.set(feed.topics.all())
        item.post = post
        item.save(update_fields=["post"])
        record_audit(
            action="post_created_feed",
            obj=post.title,
            details={"post_id": post.pk, "feed": feed.name, "feed_id": feed.pk, "key": draft.key},
        )
        result.posts.append(post.pk)
    _cancel_revoked(feed, draft)
    if at_once:
        try:
            post_publish(post=post, feed=feed.name)
        except PublishError as error:
            # Still a draft: an editor sees why on the post and decides.
            Post.objects.filter(pk=post.pk).update(status_note=str(error)[:300])
            result.notes.append(f"{post.title[:60]}: {error}")


def _cancel_revoked(feed: Feed, draft: Draft) -> None:
    """A CAP Cancel stops what is still queued of the alerts it revokes."""
    revoked = Post.objects.filter(
        pk__in=FeedItem.objects.filter(feed=feed, key__in=draft.cancels).values("post")
    ).filter(status__in=[Post.Status.DRAFT, Post.Status.SCHEDULED, Post.Status.SENDING])
    for post in revoked:
        try:
            post_cancel(post=post)
        except PublishError:
            pass  # finished in the meantime
