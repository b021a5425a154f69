"""Reading a broadcast list's CSV: bytes to lines, the header to columns, each cell to a value.

Nothing here touches the database except `TopicResolver`, which reads the topics once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from django.utils import timezone
from django.utils.translation import gettext as _

from subscribers.imports.report import ImportAborted
from topics.models import Topic

ENCODINGS = {"utf-8": "utf-8-sig", "windows-1252": "cp1252"}
# Header names accepted for each column (compared lower-case, spaces and dashes as "_").
COLUMNS = {
    "number": ("numero", "number", "telefono", "phone", "cellulare", "mobile", "wa_id"),
    "topics": ("argomenti", "topics", "argomento", "topic"),
    "consent": ("data_consenso", "consent_date", "consenso", "consented_at", "data"),
    "source": ("fonte", "source", "origine"),
}
ALL_TOPICS_WORDS = {"", "*", "tutti", "tutti gli argomenti", "all", "all topics"}
DATE_FORMATS = (
    "%d/%m/%Y",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d-%m-%Y",
    "%d.%m.%Y",
    "%d/%m/%y",
    "%Y/%m/%d",
)
EARLIEST_CONSENT = datetime(2009, 1, 1)  # WhatsApp did not exist before


@dataclass(frozen=True)
class Defaults:
    """Used where the file has no such column, or the cell is empty."""

    source: str = ""
    consented_at: datetime | None = None


@lru_cache(maxsize=4096)
def parse_consent_date(text: str) -> datetime:
    """ISO (2024-03-15, 2024-03-15T10:30+01:00) or Italian (15/03/2024, 15/03/2024 10:30);
    without a time zone it is the council's local time."""
    text = text.strip()
    if not text:
        raise ValueError(_("consent date missing"))
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        for fmt in DATE_FORMATS:
            try:
                value = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        else:
            raise ValueError(
                _("consent date “%(date)s” not understood (use 15/03/2024 or 2024-03-15)")
                % {"date": text}
            ) from None
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    if value > timezone.now():
        raise ValueError(_("consent date “%(date)s” is in the future") % {"date": text})
    if value < timezone.make_aware(EARLIEST_CONSENT):
        raise ValueError(_("consent date “%(date)s” is too old") % {"date": text})
    return value


class TopicResolver:
    """Slugs and names (Italian or English, any case) of active topics → ids. A slug always
    means its topic; a name shared by two topics is refused as ambiguous."""

    def __init__(self) -> None:
        self.slugs: dict[str, int] = {}
        self.names: dict[str, set[int]] = {}
        self.inactive: set[str] = set()
        for topic in Topic.objects.all():
            keys = {topic.slug, topic.name_it, topic.name_en}
            if not topic.is_active:
                self.inactive |= {key.strip().casefold() for key in keys}
                continue
            self.slugs[topic.slug.casefold()] = topic.pk
            for key in (topic.name_it, topic.name_en):
                self.names.setdefault(key.strip().casefold(), set()).add(topic.pk)

    def resolve(self, cell: str, separators: str) -> list[int] | None:
        """Topic ids of the cell; None for every active topic. Raises ValueError naming the
        unknown ones."""
        if cell.strip().casefold() in ALL_TOPICS_WORDS:
            return None
        for sep in separators[1:]:
            cell = cell.replace(sep, separators[0])
        ids: set[int] = set()
        problems = {"unknown": [], "inactive": [], "ambiguous": []}
        for part in cell.split(separators[0]):
            key = part.strip().casefold()
            if not key:
                continue
            if key in self.slugs:
                ids.add(self.slugs[key])
            elif len(self.names.get(key, ())) == 1:
                ids |= self.names[key]
            elif key in self.names:
                problems["ambiguous"].append(part.strip())
            elif key in self.inactive:
                problems["inactive"].append(part.strip())
            else:
                problems["unknown"].append(part.strip())
        if any(problems.values()):
            messages = {
                "unknown": _("unknown topic: %(names)s"),
                "inactive": _("topic not active: %(names)s"),
                "ambiguous": _("name of several topics, use the slug: %(names)s"),
            }
            found = [messages[k] % {"names": ", ".join(v)} for k, v in problems.items() if v]
            raise ValueError("; ".join(found))
        return sorted(ids) or None


def decoded_lines(binary: Iterable[bytes], encoding: str) -> Iterator[str]:
    """The file's lines as text; ImportAborted names the first line that is not `encoding`
    and recognises the two files editors most often upload by mistake."""
    codec = ENCODINGS.get(encoding, encoding)
    for number, raw in enumerate(binary, start=1):
        if number == 1 and raw[:4] == b"PK\x03\x04":
            raise ImportAborted(
                _("This is an Excel file (.xlsx): open it in Excel and save it as “CSV UTF-8”.")
            )
        if number == 1 and raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
            raise ImportAborted(
                _("The file is UTF-16: in Excel save it as “CSV UTF-8 (comma delimited)”.")
            )
        try:
            yield raw.decode(codec)
        except UnicodeDecodeError:
            raise ImportAborted(
                _(
                    "Line %(line)d: the file is not in the %(encoding)s encoding. In Excel save it "
                    "as “CSV UTF-8”, or choose the Windows-1252 encoding."
                )
                % {"line": number, "encoding": encoding.upper()}
            ) from None


def delimiter(first_line: str) -> str:
    """The column separator: whichever of , ; and tab the header uses most."""
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def map_header(header: list[str], defaults: Defaults) -> tuple[dict[str, int], list[str]]:
    """Position of each known column, and the names of the columns ignored. ImportAborted
    when a column is missing and `defaults` has nothing in its place."""
    positions: dict[str, int] = {}
    ignored: list[str] = []
    for index, name in enumerate(header):
        key = _header_key(name)
        column = next((c for c, names in COLUMNS.items() if key in names), None)
        if column is None or column in positions:
            ignored.append(name.strip() or f"#{index + 1}")
        else:
            positions[column] = index
    missing = []
    if "number" not in positions:
        missing.append("numero")
    if "consent" not in positions and defaults.consented_at is None:
        missing.append("data_consenso")
    if "source" not in positions and not defaults.source:
        missing.append("fonte")
    if missing:
        raise ImportAborted(
            _(
                "The first line lacks the column %(missing)s. Expected columns: numero, "
                "argomenti (optional), data_consenso, fonte. Found: %(found)s."
            )
            % {"missing": ", ".join(missing), "found": ", ".join(header) or "—"}
        )
    return positions, ignored


def _header_key(name: str) -> str:
    return name.strip().casefold().replace(" ", "_").replace("-", "_")
