"""Import an existing broadcast list (CSV) as subscribers, all lines or none.

The file is streamed: each line is checked (number → E.164, topics, consent date, source) and,
when valid, written to a scratch table (`ImportRow`). Only when every line of the whole file is
valid, and no number appears twice, do a few set-based statements merge the scratch rows into
subscribers, subscriptions and the consent ledger; all of it in one transaction, so a bad line
anywhere leaves the database as it was.

Merging rule for numbers we already know:
- new number → active subscriber, consent date from the file, ledger `import` row;
- waiting for consent (pending) → becomes active, ledger `import` row;
- active or unreachable → keeps status and consent; only topics they lack are added;
- left through WhatsApp → untouched (their "cancellami" wins over an old list);
- topics are only ever added, never removed; re-importing the same file changes nothing.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

import phonenumbers
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from subscribers.models import ConsentEvent, ImportRow, Subscriber, Subscription, mask_phone
from topics.audit import record_audit
from topics.models import Topic

DEFAULT_REGION = "IT"
ENCODINGS = {"utf-8": "utf-8-sig", "windows-1252": "cp1252"}
# Header names accepted for each column (compared lower-case, spaces and dashes as "_").
COLUMNS = {
    "number": ("numero", "number", "telefono", "phone", "cellulare", "mobile", "wa_id"),
    "topics": ("argomenti", "topics", "argomento", "topic"),
    "consent": ("data_consenso", "consent_date", "consenso", "consented_at", "data"),
    "source": ("fonte", "source", "origine"),
}
ALL_TOPICS_WORDS = {"", "*", "tutti", "tutti gli argomenti", "all", "all topics"}
IMPORT = "import"  # ConsentEvent.Kind.IMPORT and Subscription.Source.IMPORT
MAX_MESSAGES = 200  # errors listed; more are counted
CHUNK = 5000
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
LEDGER_COLUMNS = "subscriber_id, kind, topic_id, wa_message_id, privacy_version, source, note, at"


class ImportAborted(Exception):
    """The whole file is refused (encoding, header): nothing was written."""


@dataclass
class ImportReport:
    lines: int = 0
    created: int = 0
    activated: int = 0
    known: int = 0
    skipped_left: int = 0
    subscriptions_added: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    error_count: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def error(self, line: int, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_MESSAGES:
            self.errors.append((line, message))


@dataclass(frozen=True)
class Defaults:
    """Used where the file has no such column, or the cell is empty."""

    source: str = ""
    consented_at: datetime | None = None


def normalise_number(raw: str, region: str = DEFAULT_REGION) -> str:
    """'+39 333 123 4567', '0039 333…', '333 1234567', '393331234567' → '393331234567'
    (E.164 digits without '+', as Meta's wa_id). Raises ValueError with the reason."""
    text = raw.strip()
    if not text:
        raise ValueError(_("number missing"))
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not _is_valid(number):
        raise ValueError(_("“%(number)s” is not a valid phone number") % {"number": text})
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]


def _is_valid(number: phonenumbers.PhoneNumber) -> bool:
    # Checking against the country's main region first is twice as fast as is_valid_number,
    # which first works out the region among all those sharing the code (+39: Italy, Vatican).
    main_region = phonenumbers.region_code_for_country_code(number.country_code)
    return phonenumbers.is_valid_number_for_region(
        number, main_region
    ) or phonenumbers.is_valid_number(number)


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


def _decoded_lines(binary: Iterable[bytes], encoding: str) -> Iterator[str]:
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


def _header_key(name: str) -> str:
    return name.strip().casefold().replace(" ", "_").replace("-", "_")


def _map_header(header: list[str], defaults: Defaults, report: ImportReport) -> dict[str, int]:
    positions: dict[str, int] = {}
    for index, name in enumerate(header):
        key = _header_key(name)
        column = next((c for c, names in COLUMNS.items() if key in names), None)
        if column is None or column in positions:
            report.ignored_columns.append(name.strip() or f"#{index + 1}")
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
    return positions


def _delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def import_subscribers(
    binary: Iterable[bytes],
    *,
    encoding: str = "utf-8",
    region: str = DEFAULT_REGION,
    defaults: Defaults = Defaults(),
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import the CSV read from `binary` (a file opened in binary mode, or any iterable of
    byte lines). Returns the report; when it has errors nothing was written. Raises
    ImportAborted when the file as a whole cannot be read (encoding, header)."""
    report = ImportReport(dry_run=dry_run)
    batch = uuid.uuid4().hex
    counted = _counting(binary, progress)
    lines = _decoded_lines(counted, encoding)
    first = next(lines, None)
    if first is None:
        raise ImportAborted(_("The file is empty."))
    delimiter = _delimiter(first)
    separators = "".join(s for s in ";|," if s != delimiter)

    def restored() -> Iterator[str]:
        yield first
        yield from lines

    reader = csv.reader(restored(), delimiter=delimiter)
    with transaction.atomic():
        _lock_imports()
        try:
            header = next(reader)
            positions = _map_header(header, defaults, report)
            _stage(reader, positions, separators, region, defaults, batch, report)
        except csv.Error as exc:
            raise ImportAborted(
                _("Line %(line)d: the file is not a readable CSV (%(why)s).")
                % {"line": reader.line_num, "why": exc}
            ) from None
        if report.ok:
            _find_duplicates(batch, report)
        if report.ok:
            try:
                with transaction.atomic():
                    _merge(batch, report)
            except IntegrityError:
                # Someone in the file joined through WhatsApp while we were merging.
                raise ImportAborted(
                    _("A number in the file joined through WhatsApp just now: try again.")
                ) from None
        if dry_run or not report.ok:
            transaction.set_rollback(True)
        else:
            ImportRow.objects.filter(batch=batch).delete()
    return report


def _counting(binary: Iterable[bytes], progress: Callable[[int], None] | None) -> Iterator[bytes]:
    done = 0
    for number, raw in enumerate(binary, start=1):
        done += len(raw)
        if progress is not None and number % 1000 == 0:
            progress(done)
        yield raw
    if progress is not None:
        progress(done)


def _lock_imports() -> None:
    # Two imports at once would both find the same number new; on SQLite writers queue anyway.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('banditore.import'))")


def _stage(reader, positions, separators, region, defaults, batch, report) -> None:  # noqa: C901
    topics = TopicResolver()
    number_at = positions["number"]
    topics_at = positions.get("topics")
    consent_at = positions.get("consent")
    source_at = positions.get("source")
    pending: list[tuple] = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        line = reader.line_num
        report.lines += 1

        def cell(index: int | None, row=row) -> str:
            return row[index].strip() if index is not None and index < len(row) else ""

        problems = []
        if any("\x00" in value for value in row):  # PostgreSQL text cannot hold NUL
            report.error(line, _("the line contains a NUL character (is this really a CSV file?)"))
            continue
        try:
            wa_id = normalise_number(cell(number_at), region)
        except ValueError as exc:
            problems.append(str(exc))
        try:
            topic_ids = topics.resolve(cell(topics_at), separators)
        except ValueError as exc:
            problems.append(str(exc))
        consent_text = cell(consent_at)
        try:
            if consent_text or defaults.consented_at is None:
                consented = parse_consent_date(consent_text)
            else:
                consented = defaults.consented_at
        except ValueError as exc:
            problems.append(str(exc))
        source = (cell(source_at) or defaults.source)[:150]
        if not source:
            problems.append(_("consent source missing"))
        if problems:
            report.error(line, "; ".join(problems))
            continue
        if not report.ok:
            continue  # nothing will be written: only keep checking
        note = f"{source} ({timezone.localtime(consented):%Y-%m-%d})"
        for topic_id in topic_ids or [None]:
            pending.append((batch, line, wa_id, consented, note, topic_id))
        if len(pending) >= CHUNK:
            _insert_staging(pending)
            pending = []
    if pending and report.ok:
        _insert_staging(pending)


def _insert_staging(rows: list[tuple]) -> None:
    table = ImportRow._meta.db_table
    columns = "batch, line, wa_id, consented_at, note, topic_id"
    if connection.vendor == "postgresql":
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} ({columns}) VALUES (%s, %s, %s, %s, %s, %s)",
            [(b, line, w, adapt(c), n, t) for b, line, w, c, n, t in rows],
        )


def _find_duplicates(batch: str, report: ImportReport) -> None:
    table = ImportRow._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT wa_id, MIN(line), MAX(line), COUNT(DISTINCT line) FROM {table}
                WHERE batch = %s GROUP BY wa_id HAVING COUNT(DISTINCT line) > 1
                ORDER BY MIN(line) LIMIT %s""",
            [batch, MAX_MESSAGES],
        )
        duplicates = cursor.fetchall()
    for wa_id, first, last, count in duplicates:
        report.error(
            last,
            _("the number %(number)s appears %(count)d times (first on line %(first)d)")
            % {"number": mask_phone(wa_id), "count": count, "first": first},
        )


def _merge(batch: str, report: ImportReport) -> None:
    """Set-based: a handful of statements whatever the size of the file."""
    rows = ImportRow._meta.db_table
    people = Subscriber._meta.db_table
    ledger = ConsentEvent._meta.db_table
    subs = Subscription._meta.db_table
    topics = Topic._meta.db_table
    now = timezone.now()
    at = Subscriber._meta.get_field("created_at").get_db_prep_value(now, connection)
    empty_json = Subscriber._meta.get_field("conversation_context").get_db_prep_value(
        {}, connection
    )
    # One row per line (a line has one staging row per topic).
    lines = f"""(SELECT wa_id, MIN(consented_at) AS consented_at, MIN(note) AS note
                 FROM {rows} WHERE batch = %s GROUP BY wa_id)"""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT s.status, COUNT(*) FROM {lines} r JOIN {people} s ON s.wa_id = r.wa_id
                GROUP BY s.status""",
            [batch],
        )
        known = dict(cursor.fetchall())
        report.skipped_left = known.get(Subscriber.Status.LEFT, 0)
        report.activated = known.get(Subscriber.Status.PENDING, 0)
        report.known = sum(known.values()) - report.skipped_left - report.activated
        # Waiting for consent: the list is their consent.
        cursor.execute(
            f"""INSERT INTO {ledger} ({LEDGER_COLUMNS})
                SELECT s.id, %s, NULL, '', '', %s, r.note, %s
                FROM {lines} r JOIN {people} s ON s.wa_id = r.wa_id WHERE s.status = %s""",
            [IMPORT, IMPORT, at, batch, Subscriber.Status.PENDING],
        )
        cursor.execute(
            f"""UPDATE {people} SET status = %s, left_at = NULL,
                    consented_at = (SELECT MIN(r.consented_at) FROM {rows} r
                                    WHERE r.batch = %s AND r.wa_id = {people}.wa_id)
                WHERE status = %s AND wa_id IN (SELECT wa_id FROM {rows} WHERE batch = %s)""",
            [Subscriber.Status.ACTIVE, batch, Subscriber.Status.PENDING, batch],
        )
        cursor.execute(
            f"""INSERT INTO {people}
                    (wa_id, user_id, language, status, last_inbound_at, last_autoreply_at,
                     marketing_opt_out, conversation_state, conversation_context, created_at,
                     consented_at, left_at)
                SELECT r.wa_id, NULL, %s, %s, NULL, NULL, %s, '', %s, %s, r.consented_at, NULL
                FROM {lines} r
                WHERE NOT EXISTS (SELECT 1 FROM {people} x WHERE x.wa_id = r.wa_id)""",
            [Subscriber.Language.ITALIAN, Subscriber.Status.ACTIVE, False, empty_json, at, batch],
        )
        report.created = cursor.rowcount
        cursor.execute(
            f"""INSERT INTO {ledger} ({LEDGER_COLUMNS})
                SELECT s.id, %s, NULL, '', '', %s, r.note, %s
                FROM {lines} r JOIN {people} s ON s.wa_id = r.wa_id WHERE s.created_at = %s""",
            # Only this transaction can have created someone at this instant with these numbers.
            [IMPORT, IMPORT, at, batch, at],
        )
        # (person, topic) pairs they lack; a NULL topic means every active topic.
        pairs = f"""SELECT DISTINCT s.id AS subscriber_id, t.id AS topic_id, r.note AS note
                    FROM {rows} r
                    JOIN {people} s ON s.wa_id = r.wa_id
                    JOIN {topics} t ON t.id = r.topic_id OR (r.topic_id IS NULL AND t.is_active)
                    WHERE r.batch = %s AND s.status IN (%s, %s)
                    AND NOT EXISTS (SELECT 1 FROM {subs} x
                                    WHERE x.subscriber_id = s.id AND x.topic_id = t.id)"""
        statuses = [Subscriber.Status.ACTIVE, Subscriber.Status.UNREACHABLE]
        cursor.execute(
            f"""INSERT INTO {ledger} ({LEDGER_COLUMNS})
                SELECT p.subscriber_id, %s, p.topic_id, '', '', %s, p.note, %s
                FROM ({pairs}) p""",
            [ConsentEvent.Kind.TOPIC_ADDED, IMPORT, at, batch, *statuses],
        )
        cursor.execute(
            f"""INSERT INTO {subs} (subscriber_id, topic_id, created_at, source)
                SELECT p.subscriber_id, p.topic_id, %s, %s FROM ({pairs}) p""",
            [at, IMPORT, batch, *statuses],
        )
        report.subscriptions_added = cursor.rowcount


def describe(report: ImportReport) -> list[str]:
    """The report in sentences for an editor (admin page and command)."""
    if not report.ok:
        lines = [
            _("Nobody imported: %(count)d errors in %(lines)d lines. Correct them and try again.")
            % {"count": report.error_count, "lines": report.lines}
        ]
        for number, message in report.errors:
            lines.append(_("Line %(line)d: %(message)s") % {"line": number, "message": message})
        if report.error_count > len(report.errors):
            lines.append(
                _("… and %(more)d more errors.") % {"more": report.error_count - len(report.errors)}
            )
        return lines
    lines = [
        (_("Check only: nothing was written.") + " " if report.dry_run else "")
        + _(
            "%(lines)d lines: %(created)d new subscribers, %(activated)d waiting for consent "
            "now active, %(known)d already subscribed, %(left)d not subscribed again because "
            "they had left; %(subs)d topics added."
        )
        % {
            "lines": report.lines,
            "created": report.created,
            "activated": report.activated,
            "known": report.known,
            "left": report.skipped_left,
            "subs": report.subscriptions_added,
        }
    ]
    if report.ignored_columns:
        lines.append(
            _("Columns ignored (not needed): %(columns)s")
            % {"columns": ", ".join(report.ignored_columns)}
        )
    return lines


def audit(report: ImportReport, *, user=None, file_name: str = "") -> None:
    """One audit-log entry per import that wrote something (who, which file, what changed)."""
    counts = ("lines", "created", "activated", "known", "skipped_left", "subscriptions_added")
    details = {name: getattr(report, name) for name in counts}
    record_audit(action="subscribers_imported", obj=file_name, user=user, details=details)
