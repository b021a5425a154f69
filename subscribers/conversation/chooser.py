"""The topic list a citizen chooses from: rows, paging, and the WhatsApp Flow alternative.

Row ids say what a tap does, so a tap means the same however often it arrives: a topic shown
unchosen carries "t:<slug>" (choose it), a topic shown chosen (✅) carries "x:<slug>" (remove
it). A double tap, or a tap on an older copy of the list, therefore never undoes a choice;
removing is only possible from a row that showed the topic as chosen.

Meta allows 10 rows per list, titles of 24 characters and descriptions of 72
(https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/interactive-list-messages),
without saying how characters are counted: lengths here are UTF-16 code units, never fewer
than what any count would give. A name too long for the title continues in the description,
never cut.
"""

from __future__ import annotations

from dataclasses import dataclass

from subscribers.conversation import texts

ROW_TOPIC, ROW_UNTOPIC, ROW_ALL, ROW_DONE, ROW_PAGE = "t:", "x:", "all", "done", "page:"
LIST_ROWS = 10
TITLE, DESCRIPTION = 24, 72
# A Flow's checkbox item: 30 and 300 characters
# (https://developers.facebook.com/docs/whatsapp/flows/reference/components).
FLOW_ITEM = {"title_max": 30, "description_max": 300}


@dataclass(frozen=True)
class TopicList:
    header: str
    body: str
    button: str
    rows: tuple[tuple[str, str, str], ...]
    section: str = ""  # the section's title (Meta requires one per section)


@dataclass(frozen=True)
class TopicFlow:
    body: str
    cta: str
    options: tuple[tuple[str, str, str], ...]  # slug, title, description: every topic
    chosen: tuple[str, ...]


def units(text: str) -> int:
    """Length in UTF-16 code units (an emoji outside the BMP counts two)."""
    return len(text.encode("utf-16-le")) // 2


def _fit(text: str, limit: int) -> str:
    """The longest start of `text` within `limit` units."""
    while units(text) > limit:
        text = text[:-1]
    return text


def _clip(text: str, limit: int) -> str:
    """`text`, or as much as fits followed by "…" (for topic descriptions, never names)."""
    return text if units(text) <= limit else _fit(text, limit - 1).rstrip() + "…"


def row_text(
    prefix: str, name: str, description: str, *, title_max=TITLE, description_max=DESCRIPTION
) -> tuple[str, str]:
    """Title and description of a topic row: the name whole in the title when it fits, else
    cut at a word with "…" and the rest of the name first in the description."""
    if units(prefix + name) <= title_max:
        title, rest = prefix + name, ""
    else:
        words, head = name.split(" "), ""
        for i in range(len(words), 0, -1):
            head = " ".join(words[:i])
            if units(f"{prefix}{head} …") <= title_max:
                break
        else:
            head = _fit(prefix + name, title_max - 1)[len(prefix) :]
        title, rest = f"{prefix}{head.rstrip()}…", "…" + name[len(head) :].lstrip()
    if rest and description:
        extra = _clip(f" · {description}", description_max - units(rest))
        return title, rest + (extra if units(extra) > 4 else "")
    return title, rest or _clip(description, description_max)


def topic_chooser(chosen, page: int, language: str, topics: list, flow_id: str):
    names = [t.name(language) for t in topics if t.slug in chosen]
    if flow_id:
        options = tuple(
            (t.slug, *row_text("", t.name(language), t.description(language), **FLOW_ITEM))
            for t in topics
        )
        return TopicFlow(texts.flow_body(), texts.topics_button(), options, tuple(sorted(chosen)))
    fixed = 2  # "Tutti gli argomenti" and "Fatto"
    if len(topics) + fixed <= LIST_ROWS:
        page_size, pages = len(topics), 1
    else:
        page_size = LIST_ROWS - fixed - 1  # one row for the next page
        pages = -(-len(topics) // page_size)
    page = page % pages if pages else 0
    rows = []
    for t in topics[page * page_size : (page + 1) * page_size]:
        picked = t.slug in chosen
        prefix = "✅ " if picked else (f"{t.emoji} " if t.emoji else "")
        title, description = row_text(prefix, t.name(language), t.description(language))
        rows.append((f"{ROW_UNTOPIC if picked else ROW_TOPIC}{t.slug}", title, description))
    rows.append((ROW_ALL, texts.row_all(), texts.row_all_description()))
    if pages > 1:
        following = (page + 1) % pages
        title = texts.row_more() if following else texts.row_first()
        rows.append((f"{ROW_PAGE}{following}", title, texts.row_page(following + 1, pages)))
    rows.append((ROW_DONE, texts.row_done(), texts.row_done_description()))
    body = texts.topics_body(names)
    return TopicList(
        texts.topics_header(), body, texts.topics_button(), tuple(rows), texts.topics_section()
    )
