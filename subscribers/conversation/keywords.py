"""The keywords citizens type, in one place.

A keyword matches the *whole* message after normalising case, accents, punctuation and spaces,
so "Cancellami!" leaves but "non voglio che mi cancellate" does not. Extra words can be added
without code changes with the BANDITORE_KEYWORDS_EXTRA setting, e.g.
`{"join": ["iscrizione"], "leave": ["basta"]}`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from django.conf import settings


class Command(StrEnum):
    JOIN = "join"
    LEAVE = "leave"
    TOPICS = "topics"
    HELP = "help"
    ENGLISH = "english"
    ITALIAN = "italian"
    MY_DATA = "my_data"
    ERASE = "erase"


# keyword → (command, language it implies, or "" when it says nothing about the language)
KEYWORDS: dict[str, tuple[Command, str]] = {
    "iscrivimi": (Command.JOIN, "it"),
    "iscrivi": (Command.JOIN, "it"),
    "start": (Command.JOIN, "en"),
    "subscribe": (Command.JOIN, "en"),
    "join": (Command.JOIN, "en"),
    "cancellami": (Command.LEAVE, ""),
    "disiscrivimi": (Command.LEAVE, ""),
    "stop": (Command.LEAVE, ""),
    "unsubscribe": (Command.LEAVE, ""),
    "argomenti": (Command.TOPICS, ""),
    "temi": (Command.TOPICS, ""),
    "topics": (Command.TOPICS, ""),
    "menu": (Command.TOPICS, ""),
    "aiuto": (Command.HELP, ""),
    "info": (Command.HELP, ""),
    "help": (Command.HELP, ""),
    "english": (Command.ENGLISH, "en"),
    "italiano": (Command.ITALIAN, "it"),
    "i miei dati": (Command.MY_DATA, ""),
    "my data": (Command.MY_DATA, ""),
    "cancella i miei dati": (Command.ERASE, ""),
    "delete my data": (Command.ERASE, ""),
}
# "cancellami scuola": leave one topic.
LEAVE_ONE_PREFIXES = ("cancellami", "disiscrivimi", "stop", "unsubscribe")


@dataclass(frozen=True)
class Match:
    command: Command
    language: str = ""
    argument: str = ""  # the topic named after a leave keyword


def normalise(text: str) -> str:
    """Lower case, no accents, punctuation and emoji as spaces, single spaces, and a leading
    slash dropped (WhatsApp's conversational commands, such as /iscrivimi, arrive as ordinary
    text messages)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^\w]+|_", " ", plain).split())


def _table() -> dict[str, tuple[Command, str]]:
    table = dict(KEYWORDS)
    for command, words in settings.BANDITORE_KEYWORDS_EXTRA.items():
        for word in words:
            table[normalise(word)] = (Command(command), "")
    return table


def match(text: str) -> Match | None:
    words = normalise(text)
    if not words:
        return None
    found = _table().get(words)
    if found:
        return Match(command=found[0], language=found[1])
    first, _, rest = words.partition(" ")
    if first in LEAVE_ONE_PREFIXES and rest and len(rest.split()) <= 4:
        return Match(command=Command.LEAVE, argument=rest)
    return None
