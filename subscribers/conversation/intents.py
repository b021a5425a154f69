"""What a citizen's message means: every understanding rule of the conversation, in one place.

1. Normalise case, accents, apostrophes, punctuation, emoji (🛑 ⛔ 🚫 are "stop", 👍 ✅ "ok"),
   letters repeated three times or more ("bastaaa"), spaces, a leading slash.
2. Drop polite words, greetings, fillers, articles, prepositions and pronouns. Verb families
   count in every form by their stem (cancella, cancellami, cancellatemi, cancellazione;
   iscrivimi, iscriviti, iscrizione...); a word of ≥ 5 letters within one edit
   (Damerau-Levenshtein) of a family's form, or equal to it with doubled letters single, is it.
3. A negation before a leave verb in its clause cancels it ("non voglio che mi cancellate"),
   unless the person cannot or asks how ("non riesco a cancellarmi"). A negation before
   sending, receiving or wanting ("non mandatemi più", "I don't want these messages"), or
   before joining with "più" ("non voglio più essere iscritto"), is a leave.
4. Leaving is never missed: a leave with nothing else is LEAVE; with a topic's name (full
   displayed name or a part unique to it, with or without articles and prepositions; two
   topics → ask which) a leave of that topic; with a how/why question, other words, or a bare
   "no", MAYBE_LEAVE, answered with one question with buttons.
5. Whole commands (ARGOMENTI, AIUTO, I MIEI DATI...) match once fillers are gone; extra words
   in BANDITORE_KEYWORDS_EXTRA, e.g. `{"join": ["ci sto"]}`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from django.conf import settings

from subscribers.conversation.vocabulary import (
    ARTICLES,
    AUXILIARIES,
    COMPLAINT,
    DIGEST_IMMEDIATE_PHRASES,
    DIGEST_WEEKLY_PHRASES,
    DONE,
    FILLERS,
    FUNCTION_WORDS,
    GENERIC,
    HELPERS,
    JOIN_FORMS,
    JOIN_STEMS,
    JOIN_WORDS,
    LEAVE_FORMS,
    LEAVE_STEMS,
    LEAVE_WORDS,
    MORE,
    NEGATIONS,
    NEWS,
    NO,
    NOT_LEAVE,
    QUESTION,
    SEND_STEMS,
    UNABLE,
    WANT,
    YES,
)


class Intent(StrEnum):
    JOIN = "join"
    LEAVE = "leave"
    MAYBE_LEAVE = "maybe_leave"
    LEAVE_TOPIC = "leave_topic"
    TOPICS = "topics"
    HELP = "help"
    ENGLISH = "english"
    ITALIAN = "italian"
    MY_DATA = "my_data"
    DIGEST_WEEKLY = "digest_weekly"
    DIGEST_IMMEDIATE = "digest_immediate"
    ERASE = "erase"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Understood:
    intent: Intent
    language: str = ""  # the language the words imply, "" when they say nothing about it
    topics: tuple[str, ...] = ()  # LEAVE_TOPIC: the slugs that matched (several: ask which)
    rest: str = ""  # the words that were not understood


# Whole messages (as written, or once fillers are gone) → (intent, language they imply).
COMMANDS: dict[str, tuple[Intent, str]] = {
    phrase: (intent, language)
    for intent, language, phrases in (
        (Intent.JOIN, "en", "start"),
        (Intent.MAYBE_LEAVE, "", "no|no no|nope"),  # a bare "no" to a message we sent
        (Intent.TOPICS, "", "argomenti|temi|topics|menu|cambia argomenti"),
        (Intent.HELP, "", "aiuto|info|help"),
        (Intent.ENGLISH, "en", "english|inglese"),
        (Intent.ITALIAN, "it", "italiano|italian"),
        (Intent.MY_DATA, "", "i miei dati|my data|dati|data"),
        (Intent.DIGEST_WEEKLY, "", DIGEST_WEEKLY_PHRASES),
        (Intent.DIGEST_IMMEDIATE, "", DIGEST_IMMEDIATE_PHRASES),
        (Intent.ERASE, "", "cancella i miei dati|delete my data|cancella dati|delete data"),
    )
    for phrase in phrases.split("|")
}


# fmt: off
_EMOJI = {"🛑": " stop ", "⛔": " stop ", "🚫": " stop ", "👍": " ok ", "✅": " ok ", "✔": " ok "}


def normalise(text: str) -> str:
    """Lower case, no accents, punctuation, apostrophes and emoji as spaces, letters repeated
    three times or more as one, single spaces, and a leading slash dropped (WhatsApp's
    conversational commands, such as /iscrivimi, arrive as ordinary text messages)."""
    for emoji, word in _EMOJI.items():
        text = text.replace(emoji, word)
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    plain = re.sub(r"(\w)\1{2,}", r"\1", plain)
    return " ".join(re.sub(r"[^\w]+|_", " ", plain).split())


# Two-word verbs made one word: "opt out", "sign me up", "take me off".
_PHRASES = (
    (r"\bopt(?: me)? out\b", "optout"),
    (r"\btake(?: me)?(?: off| out)\b", "optout"),
    (r"\bsign(?: me)? up\b", "signup"),
    (r"\bopt(?: me)? in\b", "optin"),
)


def _clauses(text: str) -> list[list[str]]:
    clauses = []
    for part in re.split(r"[.,;:!?\n]+|\s-\s", text):
        words = normalise(part)
        for pattern, word in _PHRASES:
            words = re.sub(pattern, word, words)
        if words:
            clauses.append(words.split())
    return clauses


def _single(word: str) -> str:
    return re.sub(r"(\w)\1+", r"\1", word)


def within_one_edit(a: str, b: str) -> bool:
    """Damerau-Levenshtein distance ≤ 1 (one insertion, deletion, substitution or swap)."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        if len(diff) == 1:
            return True
        i = diff[0]
        return len(diff) == 2 and diff[1] == i + 1 and a[i] == b[i + 1] and a[i + 1] == b[i]
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def same_word(word: str, form: str) -> bool:
    """The same word up to doubled letters, or a typo of one edit in words of ≥ 5 letters."""
    if word == form or _single(word) == _single(form):
        return True
    return len(word) >= 5 and len(form) >= 5 and within_one_edit(word, form)


def _family(word: str, stems, words, forms) -> bool:
    if len(word) < 5:  # too short to guess from a stem or a typo
        return word in words
    if any(_single(word).startswith(_single(stem)) for stem in stems):
        return True
    return any(same_word(word, form) for form in (*words, *forms))


def is_leave_word(word: str) -> bool:
    return _family(word, LEAVE_STEMS, LEAVE_WORDS, LEAVE_FORMS)


def is_join_word(word: str) -> bool:
    return not is_leave_word(word) and _family(word, JOIN_STEMS, JOIN_WORDS, JOIN_FORMS)


def _is_send_word(word: str) -> bool:
    return len(word) >= 4 and any(word.startswith(stem) for stem in SEND_STEMS)


class _Reading:
    leave = maybe = join = erase = False


def _read_clause(words: list[str], reading: _Reading) -> list[str]:  # noqa: C901
    """Mark the leave/join signals of one clause; return the words no rule used."""
    negated = unable = past = want = kept = complaint = False
    clause = _Reading()
    more = bool(MORE & set(words))  # "non ... più" anywhere in the clause
    rest: list[str] = []
    for i, word in enumerate(words):
        if word in NOT_LEAVE and words[i - 1 : i] and words[i - 1] in ARTICLES:
            rest.append(word)  # "il cancello della scuola"
            continue
        if word == "no":  # answers; negates only "more": "NO STOP" leaves, so does "no more"
            negated = negated or bool(MORE & set(words[i + 1 : i + 2]))
        elif word in NEGATIONS or (word == "t" and words[i - 1 : i] == ["don"]):
            negated = True
        elif word == "t" and words[i - 1 : i] in (["can"], ["won"]):
            negated = unable = True
        elif word in MORE:
            continue
        elif word in UNABLE:
            unable = True
        elif word in AUXILIARIES:
            past = True
        elif word in COMPLAINT:
            complaint = True
        elif word in WANT:
            want = True
        elif is_leave_word(word):
            if negated and not (unable or more):
                kept = True  # "non cancellatemi", "don't unsubscribe me"
            else:
                clause.leave = True
                clause.maybe = clause.maybe or (negated and unable)
        elif is_join_word(word):
            if negated and not unable:
                clause.leave = True  # "non voglio più essere iscritto"
                clause.maybe = clause.maybe or not more  # "non mi sono mai iscritto"
            else:
                clause.join = True
        elif _is_send_word(word) or word in GENERIC or word in NEWS:
            if negated and not past:
                clause.leave = True  # "non mandatemi più", "I don't want these messages"
            elif complaint:
                clause.maybe = True  # "perché mi mandate questi messaggi", "too many"
            elif want or (_is_send_word(word) and (word.endswith("mi") or "me" in words[i:])):
                clause.join = True  # "voglio ricevere le notizie", "mandatemi", "send me"
        elif word in {"dati", "data"}:
            clause.erase = True
        elif word not in FILLERS and word not in FUNCTION_WORDS and word not in HELPERS:
            rest.append(word)
    if negated and not (kept or past or clause.join or clause.leave):
        if more and not rest:
            clause.leave = True  # "non voglio più", "no more"
        elif want or more:
            clause.maybe = True  # "non voglio", "I don't want"
    if complaint and (clause.join or clause.leave):
        clause.maybe = True
    if not kept:  # "non smettete di mandarmi le notizie": nothing here asks to stop
        reading.leave, reading.join = reading.leave or clause.leave, reading.join or clause.join
        reading.maybe = reading.maybe or clause.maybe
    reading.erase = reading.erase or clause.erase
    return rest


def _extra() -> dict[str, tuple[Intent, str]]:
    extra = settings.BANDITORE_KEYWORDS_EXTRA
    return {normalise(w): (Intent(command), "") for command, ws in extra.items() for w in ws}


def _strip(words: Iterable[str]) -> str:
    return " ".join(w for w in words if w not in FILLERS and w not in FUNCTION_WORDS)


def understand(text: str, topics: Iterable = ()) -> Understood:  # noqa: C901
    """What the message asks. `topics` have .slug, .name_it and .name_en (the names shown)."""
    words = normalise(text)
    for table in (_extra(), COMMANDS):
        for key in (words, _strip(words.split())):
            if key in table:
                return Understood(*table[key])
    reading = _Reading()
    rest: list[str] = []
    for clause in _clauses(text):
        rest += _read_clause(clause, reading)
    asked = "?" in text or words.startswith(("come ", "how ")) or " can i " in f" {words} "
    question = asked and bool(QUESTION & set(words.split()) or "can i" in words)
    if reading.leave:
        if reading.erase and not rest:
            return Understood(Intent.ERASE)
        if rest:
            found = find_topics(" ".join(rest), topics)
            if found:
                return Understood(Intent.LEAVE_TOPIC, topics=found, rest=" ".join(rest))
        if rest or question or reading.maybe:
            return Understood(Intent.MAYBE_LEAVE, rest=" ".join(rest))
        return Understood(Intent.LEAVE)
    if reading.maybe:
        return Understood(Intent.MAYBE_LEAVE, rest=" ".join(rest))
    if reading.join:
        return Understood(Intent.JOIN, _language(words.split()))
    return Understood(Intent.UNKNOWN, rest=" ".join(rest))


def _language(words: list[str]) -> str:
    italian = ("iscri", "vogli", "vorre", "notiz", "ricev", "abbon", "registrami", "mand", "invi")
    english = ("subscri", "join", "sign", "start", "regist", "enrol", "want", "send", "news")
    english = "en" if any(w.startswith(english) for w in words) else ""
    return "it" if any(w.startswith(italian) for w in words) else english


def find_topics(said: str, topics: Iterable) -> tuple[str, ...]:
    """The topics `said` names: its full displayed name (Italian or English, parentheses
    included), or words that are all part of one name, with or without articles and
    prepositions, each word up to one typo. A full name beats a part of another name."""
    wanted = [w for w in normalise(said).split() if w not in FUNCTION_WORDS and w not in FILLERS]
    if not wanted:
        return ()
    exact, partial = [], []
    for topic in topics:
        names = [
            [w for w in normalise(name).split() if w not in FUNCTION_WORDS]
            for name in (topic.name_it, topic.name_en)
        ]
        if any(len(n) == len(wanted) and all(map(same_word, wanted, n)) for n in names):
            exact.append(topic.slug)
        elif any(
            all(any(same_word(w, x) for x in n) for w in wanted) for n in [*names, [topic.slug]]
        ):
            partial.append(topic.slug)
    return tuple(exact or partial)


# fmt: off
def _plain(text: str) -> list[str]:
    return [w for w in normalise(text).split() if w not in FILLERS - {"ok", "okay"}]


def consent_answer(text: str) -> bool | None:
    """True for a typed yes ("Accetto", "sì", "ok", "yes"), False for a typed no ("no grazie",
    "non accetto"), None for anything else."""
    said = _plain(text) or normalise(text).split()
    if not said:
        return None
    if any(w in NEGATIONS or w == "no" for w in said):
        return False if all(w in YES | NO | NEGATIONS for w in said) else None
    return True if all(w in YES | {"d", "i", "the", "e"} for w in said) else None


def is_done(text: str) -> bool:
    """A typed "Fatto"/"done" while choosing topics."""
    said = _plain(text) or normalise(text).split()
    return bool(said) and all(w in DONE for w in said) and said != ["basta"]


def named_topics(text: str, topics: Iterable) -> tuple[str, ...]:
    """Topic names typed while choosing ("scuola", "scuola e farmacie"): each part names one
    topic, or nothing is chosen."""
    topics = list(topics)
    whole = find_topics(text, topics)
    if len(whole) == 1:
        return whole
    kept_commas = ",".join(normalise(part) for part in text.split(","))
    parts = [p for p in re.split(r",|\+|&|\be\b|\band\b", kept_commas) if p.strip()]
    found: list[str] = []
    for part in parts:
        match = find_topics(part, topics)
        if len(match) != 1:
            return ()
        found.append(match[0])
    return tuple(dict.fromkeys(found))
