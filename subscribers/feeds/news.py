"""RSS and Atom items read with feedparser, after defusedxml has refused hostile XML."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import defusedxml.ElementTree as SafeET
import feedparser
from defusedxml import DefusedXmlException
from django.utils.translation import gettext as _

from subscribers.feeds.fetching import FeedError
from subscribers.feeds.text import cut_at_word, html_to_text

KEY_MAX = 255  # FeedItem.key


@dataclass(frozen=True)
class NewsItem:
    key: str
    title: str
    summary: str
    link: str


def refuse_hostile_xml(body: bytes) -> None:
    """FeedError for entity declarations (billion laughs, external entities, DTD fetches).

    A body that is not well-formed XML passes here: feedparser reads many such feeds leniently,
    and its lenient parser expands no declared entities.
    """
    try:
        SafeET.fromstring(body, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as error:
        raise FeedError(
            _("The feed declares XML entities (%(kind)s): refused as unsafe.")
            % {"kind": type(error).__name__}
        ) from None
    except SafeET.ParseError:
        pass


def item_key(*candidates: str) -> str:
    """The first non-empty candidate, hashed when it would not fit the key column."""
    for candidate in candidates:
        candidate = (candidate or "").strip()
        if candidate:
            if len(candidate) > KEY_MAX:
                return "sha256:" + hashlib.sha256(candidate.encode()).hexdigest()
            return candidate
    return ""


def news_items(body: bytes) -> list[NewsItem]:
    """The feed's items, oldest first; FeedError when the body is not a feed at all."""
    refuse_hostile_xml(body)
    parsed = feedparser.parse(body)  # bytes: parsed as they are, never fetched
    if not parsed.get("version") and not parsed.entries:
        reason = parsed.get("bozo_exception")
        raise FeedError(
            _("The address does not answer an RSS or Atom feed (%(reason)s).")
            % {"reason": type(reason).__name__ if reason else _("no items")}
        )
    items = []
    entries = list(parsed.entries)
    if entries and all(_when(entry) for entry in entries):
        entries.sort(key=_when, reverse=True)
    for entry in entries:
        title = html_to_text(entry.get("title", ""))
        content = entry.get("content") or [{}]
        summary = html_to_text(entry.get("summary", "") or content[0].get("value", ""))
        link = (entry.get("link") or "").strip()
        if not title and not summary:
            continue  # nothing to tell
        digest = hashlib.sha256(f"{title}\n{summary}".encode()).hexdigest()
        key = item_key(entry.get("id", ""), link, "sha256:" + digest)
        if not title:
            title = cut_at_word(summary.split("\n", 1)[0], 80)
        items.append(NewsItem(key=key, title=title, summary=summary, link=link))
    # Feeds list the newest first; posts are created in the order things happened.
    items.reverse()
    return items


def _when(entry) -> tuple | None:
    return entry.get("published_parsed") or entry.get("updated_parsed")
