"""The council's name inside an Italian sentence: "del Comune di Pordenone", "dalla Città di
Torino", "di Roma Capitale", never "di Comune di …".

Italian joins di/da/a/in/su with the definite article (di + il = del, da + la = dalla, a + l' =
all'). The article comes from COUNCIL_NAME_ARTICLE, or, left at "auto", from the name's first
word: an institution's common noun takes its article (Comune → il, Città → la, Unione → l'),
anything else is a proper name and takes none (Roma Capitale, Pordenone).
"""

from __future__ import annotations

from django.conf import settings

ARTICLES = ("il", "lo", "la", "l'", "i", "gli", "le")
NO_ARTICLE = "none"
# The words a council's official name starts with, and their article.
_INSTITUTIONS = {
    "comune": "il",
    "municipio": "il",
    "consorzio": "il",
    "circondario": "il",
    "città": "la",
    "citta": "la",
    "provincia": "la",
    "regione": "la",
    "comunità": "la",
    "comunita": "la",
    "unione": "l'",
    "amministrazione": "l'",
    "ente": "l'",
    "comuni": "i",
    "municipi": "i",
}
_JOINED = {
    "di": ("del", "dello", "della", "dell'", "dei", "degli", "delle"),
    "da": ("dal", "dallo", "dalla", "dall'", "dai", "dagli", "dalle"),
    "a": ("al", "allo", "alla", "all'", "ai", "agli", "alle"),
    "in": ("nel", "nello", "nella", "nell'", "nei", "negli", "nelle"),
    "su": ("sul", "sullo", "sulla", "sull'", "sui", "sugli", "sulle"),
}


def article_of(name: str, setting: str = "auto") -> str:
    """The definite article the name takes ("" for none)."""
    chosen = (setting or "auto").strip().lower().replace("’", "'")
    if chosen == NO_ARTICLE:
        return ""
    if chosen in ARTICLES:
        return chosen
    words = name.split()
    return _INSTITUTIONS.get(words[0].lower(), "") if words else ""


def with_preposition(preposition: str, name: str, article: str) -> str:
    """ "di" + "il" + "Comune di Pordenone" → "del Comune di Pordenone"; "" → "il Comune…"."""
    if not article:
        return f"{preposition} {name}".strip()
    joined = _JOINED[preposition][ARTICLES.index(article)] if preposition else article
    return f"{joined}{name}" if joined.endswith("'") else f"{joined} {name}"


def council_phrases(name: str | None = None, setting: str | None = None) -> dict[str, str]:
    """The council's name as each text needs it, for `%(…)s` in the messages:
    council ("Comune di Pordenone"), the_council ("il Comune…"), of_council ("del Comune…"),
    from_council ("dal Comune…"), to_council ("al Comune…")."""
    name = settings.COUNCIL_NAME if name is None else name
    setting = settings.COUNCIL_NAME_ARTICLE if setting is None else setting
    article = article_of(name, setting)
    return {
        "council": name,
        "the_council": with_preposition("", name, article),
        "of_council": with_preposition("di", name, article),
        "from_council": with_preposition("da", name, article),
        "to_council": with_preposition("a", name, article),
    }
