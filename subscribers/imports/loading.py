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

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from subscribers.imports.parsing import (
    Defaults,
    TopicResolver,
    decoded_lines,
    delimiter,
    map_header,
    parse_consent_date,
)
from subscribers.imports.report import MAX_MESSAGES, ImportAborted, ImportReport
from subscribers.models import ConsentEvent, ImportRow, Subscriber, Subscription, mask_phone
from subscribers.numbers import DEFAULT_REGION, normalise_number
from topics.models import Topic

IMPORT = "import"  # ConsentEvent.Kind.IMPORT and Subscription.Source.IMPORT
CHUNK = 5000
LEDGER_COLUMNS = "subscriber_id, kind, topic_id, wa_message_id, privacy_version, source, note, at"


def import_subscribers(
    binary: Iterable[bytes],
    *,
    encoding: str = "utf-8",
    region: str = DEFAULT_REGION,
    defaults: Defaults | None = None,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import the CSV read from `binary` (a file opened in binary mode, or any iterable of
    byte lines). Returns the report; when it has errors nothing was written. Raises
    ImportAborted when the file as a whole cannot be read (encoding, header)."""
    defaults = defaults or Defaults()
    report = ImportReport(dry_run=dry_run)
    batch = uuid.uuid4().hex
    counted = _counting(binary, progress)
    lines = decoded_lines(counted, encoding)
    first = next(lines, None)
    if first is None:
        raise ImportAborted(_("The file is empty."))
    separator = delimiter(first)
    # Topics in a cell are split on whichever of these the columns are not split on.
    separators = "".join(s for s in ";|," if s != separator)

    def restored() -> Iterator[str]:
        yield first
        yield from lines

    reader = csv.reader(restored(), delimiter=separator)
    with transaction.atomic():
        _lock_imports()
        try:
            header = next(reader)
            positions, report.ignored_columns = map_header(header, defaults)
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
    subs = Subscription._meta.db_table
    topics = Topic._meta.db_table
    now = timezone.now()
    at = Subscriber._meta.get_field("created_at").get_db_prep_value(now, connection)
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
        columns, values, params = _new_subscriber(now)
        cursor.execute(
            f"""INSERT INTO {people} ({columns}) SELECT {values} FROM {lines} r
                WHERE NOT EXISTS (SELECT 1 FROM {people} x WHERE x.wa_id = r.wa_id)""",
            [*params, batch],
        )
        report.created = cursor.rowcount
        # The list is the consent of those it just created and of those waiting for consent.
        # Only this transaction can have created someone at this instant with these numbers;
        # RETURNING id would instead carry every new id through Python and back.
        _add_to_ledger(
            cursor,
            IMPORT,
            f"""SELECT s.id AS subscriber_id, CAST(NULL AS BIGINT) AS topic_id, r.note AS note
                FROM {lines} r JOIN {people} s ON s.wa_id = r.wa_id
                WHERE s.created_at = %s OR s.status = %s""",
            [batch, at, Subscriber.Status.PENDING],
            at,
        )
        # UPDATE … FROM joins once (PostgreSQL, SQLite ≥ 3.33); a correlated subquery per
        # person would scan the unindexed scratch table once for each of them.
        cursor.execute(
            f"""UPDATE {people} SET status = %s, left_at = NULL, consented_at = r.consented_at
                FROM {lines} r WHERE {people}.wa_id = r.wa_id AND {people}.status = %s""",
            [Subscriber.Status.ACTIVE, batch, Subscriber.Status.PENDING],
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
        _add_to_ledger(cursor, ConsentEvent.Kind.TOPIC_ADDED, pairs, [batch, *statuses], at)
        cursor.execute(
            f"""INSERT INTO {subs} (subscriber_id, topic_id, created_at, source)
                SELECT p.subscriber_id, p.topic_id, %s, %s FROM ({pairs}) p""",
            [at, IMPORT, batch, *statuses],
        )
        report.subscriptions_added = cursor.rowcount


# Columns of a new subscriber that come from the file (`r` is one line of it).
FROM_FILE = {"wa_id": "r.wa_id", "consented_at": "r.consented_at"}


def _new_subscriber(now) -> tuple[str, str, list]:
    """Columns, SELECT list and parameters of an imported subscriber: number and consent date
    from the file, active, joined `now`, and the model's default in every other column."""
    template = Subscriber(status=Subscriber.Status.ACTIVE, created_at=now)
    fields = [field for field in Subscriber._meta.concrete_fields if not field.primary_key]
    values, params = [], []
    for field in fields:
        if field.name in FROM_FILE:
            values.append(FROM_FILE[field.name])
        else:
            values.append("%s")
            params.append(field.get_db_prep_save(getattr(template, field.attname), connection))
    return ", ".join(field.column for field in fields), ", ".join(values), params


def _add_to_ledger(cursor, kind: str, rows: str, params: list, at) -> None:
    """One consent-ledger row of `kind`, from the import, for each (subscriber_id, topic_id,
    note) that the query `rows` selects."""
    cursor.execute(
        f"""INSERT INTO {ConsentEvent._meta.db_table} ({LEDGER_COLUMNS})
            SELECT p.subscriber_id, %s, p.topic_id, '', '', %s, p.note, %s FROM ({rows}) p""",
        [kind, IMPORT, at, *params],
    )
