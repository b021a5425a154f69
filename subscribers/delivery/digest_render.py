"""A person's digest, rendered when it is sent, on the desk's preview and on its web page.

What a person finds: the gathered posts of the topics they follow now, that they did not get
at once, ordered by topic (the topics' order) and in each topic by publication; a post on
several of their topics is listed once, under the first. Each post: its title, its first
line, its link. Free-form the message holds 4,096 characters; what does not fit is counted and
the message links the person's web page with the whole digest. A template carries it in its
parameters (about 1,000 characters: https://developers.facebook.com/docs/whatsapp/
business-management-api/message-templates/components#body): the titles and the page's link.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.db import connection
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import override

from channel.graph import payloads
from channel.models import MessageTemplate
from subscribers.delivery.digest import gathered_posts
from subscribers.models import Delivery, Subscription
from topics.models import Post, Topic

PAGE_SALT = "banditore.digest.page"
LINE_MAX = 160  # the first line of a post's text, shortened beyond this
TEMPLATE_BODY_MAX = 700  # room left in a template's 1,024 characters for its own wording


@dataclass(frozen=True)
class Section:
    topic: Topic
    posts: list[Post]


def page_token(digest_id: int, subscriber_id: int) -> str:
    """A signed, unguessable reference to one person's digest (no personal data in it)."""
    return signing.Signer(salt=PAGE_SALT).sign(f"{digest_id}-{subscriber_id}")


def read_page_token(token: str) -> tuple[int, int] | None:
    try:
        digest_id, subscriber_id = signing.Signer(salt=PAGE_SALT).unsign(token).split("-")
        return int(digest_id), int(subscriber_id)
    except (signing.BadSignature, ValueError):
        return None


def page_url(digest_id: int, subscriber_id: int) -> str:
    path = reverse("digest_page", args=[page_token(digest_id, subscriber_id)])
    return f"{settings.SITE_URL.rstrip('/')}{path}"


def digest_sections(digest: Post, subscriber_ids: list[int]) -> dict[int, list[Section]]:
    """{person: their sections}, one query for a batch of people; people with nothing in the
    digest are absent."""
    if not subscriber_ids:
        return {}
    posts = {post.pk: post for post in gathered_posts(digest).order_by("published_at", "pk")}
    if not posts:
        return {}
    sql = f"""
        SELECT s.subscriber_id, pt.post_id, s.topic_id
        FROM {Subscription._meta.db_table} s
        JOIN {Post.topics.through._meta.db_table} pt ON pt.topic_id = s.topic_id
        WHERE pt.post_id IN ({", ".join(["%s"] * len(posts))})
          AND s.subscriber_id IN ({", ".join(["%s"] * len(subscriber_ids))})
          AND NOT EXISTS (SELECT 1 FROM {Delivery._meta.db_table} d
                          WHERE d.post_id = pt.post_id AND d.subscriber_id = s.subscriber_id)
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [*posts, *subscriber_ids])
        rows = cursor.fetchall()
    topics = {t.pk: t for t in Topic.objects.filter(pk__in={row[2] for row in rows})}

    def rank(topic_id: int) -> tuple[int, int]:
        return topics[topic_id].order, topic_id

    first_topic: dict[int, dict[int, int]] = defaultdict(dict)  # person → post → topic
    for person, post_id, topic_id in rows:
        known = first_topic[person].get(post_id)
        if known is None or rank(topic_id) < rank(known):
            first_topic[person][post_id] = topic_id
    order = {post_id: n for n, post_id in enumerate(posts)}
    sections = {}
    for person, chosen in first_topic.items():
        grouped: dict[int, list[Post]] = defaultdict(list)
        for post_id in sorted(chosen, key=order.__getitem__):
            grouped[chosen[post_id]].append(posts[post_id])
        sections[person] = [Section(topics[t], grouped[t]) for t in sorted(grouped, key=rank)]
    return sections


def first_line(text: str) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= LINE_MAX else line[: LINE_MAX - 1].rstrip() + "…"


def _item(post: Post) -> str:
    parts = (f"• *{post.title}*", first_line(post.body), post.link)
    return "\n".join(part for part in parts if part)


def digest_title() -> str:
    return _("Il riepilogo della settimana")


def free_form_post(digest: Post, sections: list[Section], subscriber_id: int) -> Post:
    """The digest as one text message (call it in the person's language). Whole sections
    and posts while they fit in 4,096 characters; past that, how many more and the page."""
    title = digest_title()
    limit = payloads.LIMITS["text"] - len(f"*{title}*\n\n")
    total = sum(len(section.posts) for section in sections)
    url = page_url(digest.pk, subscriber_id)
    tail_room = len(_("…e altre %(n)s notizie, tutte qui: %(url)s") % {"n": total, "url": url})
    blocks, shown, used = [], 0, 0
    for section in sections:
        heading = f"📌 *{section.topic.name}*"
        for n, post in enumerate(section.posts):
            block = f"{heading}\n{_item(post)}" if n == 0 else _item(post)
            cost = len(block) + 2
            if used + cost > limit - tail_room and shown + 1 < total or used + cost > limit:
                break
            blocks.append(block)
            shown, used = shown + 1, used + cost
        else:
            continue
        break
    if shown < total:
        blocks.append(
            _("…e altre %(n)s notizie, tutte qui: %(url)s") % {"n": total - shown, "url": url}
        )
    return Post(pk=digest.pk, kind=Post.Kind.DIGEST, title=title, body="\n\n".join(blocks))


def template_post(
    digest: Post, sections: list[Section], subscriber_id: int, template: MessageTemplate
) -> Post:
    """The digest on a template's parameters (call it in the person's language): the
    titles, and the page with the whole digest: as the post's link (a template's link
    parameter or URL button), and at the end of the text unless a parameter shows the link."""
    url = page_url(digest.pk, subscriber_id)
    shows_link = "link" in template.body_parameters
    titles = [post.title for section in sections for post in section.posts]
    ending = "" if shows_link else " " + _("Tutte le notizie: %(url)s") % {"url": url}
    text, room = "", TEMPLATE_BODY_MAX - len(ending)
    for n, title in enumerate(titles):
        more = _(" (e altre %(n)s)") % {"n": len(titles) - n}
        candidate = f"{text}; {title}" if text else title
        if len(candidate) + len(more) > room and n + 1 < len(titles) or len(candidate) > room:
            text += more
            break
        text = candidate
    return Post(
        pk=digest.pk,
        kind=Post.Kind.DIGEST,
        title=digest_title(),
        body=text + ending,
        link=url,
    )


@dataclass(frozen=True)
class PersonalDigest:
    free_form: Post
    sections: list[Section]

    def for_template(self, template: MessageTemplate, subscriber_id: int, language: str) -> Post:
        with override(language):
            return template_post(self.free_form, self.sections, subscriber_id, template)


def digest_sample(digest: Post) -> tuple[int, str, PersonalDigest] | None:
    """One recipient's digest, for the desk's preview: (person, language, their digest)."""
    first = (
        Delivery.objects.filter(post=digest)
        .order_by("id")
        .values_list("subscriber_id", "subscriber__language")
    )
    for person, language in first[:50]:  # the first with something in it
        mine = personal_digests(digest, {person: language}).get(person)
        if mine is not None:
            return person, language, mine
    return None


def personal_digests(digest: Post, people: dict[int, str]) -> dict[int, PersonalDigest]:
    """{person: their digest} for a batch ({person: language}); absent: nothing for them."""
    out = {}
    for person, sections in digest_sections(digest, list(people)).items():
        with override(people[person]):
            out[person] = PersonalDigest(free_form_post(digest, sections, person), sections)
    return out
