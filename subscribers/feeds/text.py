"""A feed's HTML turned into what a WhatsApp message holds: plain text within Meta's limits."""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Tags after which the text continues on a new line (paragraphs, list items, line breaks).
BLOCK_TAGS = {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr"}
# Tags whose content is never text for a reader.
HIDDEN_TAGS = {"script", "style", "head", "title", "template", "noscript"}
ELLIPSIS = "…"


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)  # entities (&egrave; &#8217;) decoded here
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag, attrs) -> None:
        if tag in HIDDEN_TAGS:
            self.hidden += 1
        elif tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag) -> None:
        if tag in HIDDEN_TAGS:
            self.hidden = max(self.hidden - 1, 0)
        elif tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data) -> None:
        if not self.hidden:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Text of an HTML fragment: tags dropped, entities decoded, blank runs collapsed."""
    collector = _TextCollector()
    collector.feed(html or "")
    collector.close()
    lines = (
        re.sub(r"[ \t\r\f\v\u00a0]+", " ", line).strip()
        for line in "".join(collector.parts).split("\n")
    )
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def cut_at_word(text: str, limit: int) -> str:
    """`text` if it fits, else cut at the last whole word within `limit` with "…" appended."""
    text = text.strip()
    if len(text) <= limit:
        return text
    room = text[: limit - len(ELLIPSIS)]
    cut = room.rstrip()
    space = max(cut.rfind(" "), cut.rfind("\n"))
    if space > limit // 2:  # a word boundary not too far back; else cut inside the long word
        cut = cut[:space]
    return cut.rstrip(" ,;:.-–—\n") + ELLIPSIS
