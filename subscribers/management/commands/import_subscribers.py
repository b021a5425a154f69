from __future__ import annotations

import os
import sys
import time
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError

from subscribers.imports.loading import import_subscribers
from subscribers.imports.parsing import ENCODINGS, Defaults, parse_consent_date
from subscribers.imports.report import ImportAborted, audit, describe
from subscribers.numbers import DEFAULT_REGION


class Command(BaseCommand):
    help = (
        "Import an existing broadcast list from a CSV file with the columns numero, argomenti "
        "(optional), data_consenso, fonte. All lines or none: any invalid line is reported "
        "with its number and nothing is written."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="CSV file (UTF-8; ',' or ';' between columns)")
        parser.add_argument(
            "--encoding", choices=sorted(ENCODINGS), default="utf-8", help="default utf-8"
        )
        parser.add_argument(
            "--region",
            default=DEFAULT_REGION,
            help="country of numbers written without a prefix (default IT)",
        )
        parser.add_argument("--source", default="", help="consent source for empty cells")
        parser.add_argument(
            "--consent-date", default="", help="consent date for empty cells (e.g. 2024-03-15)"
        )
        parser.add_argument("--dry-run", action="store_true", help="check only, write nothing")

    def handle(self, *args, **options) -> None:
        path = options["file"]
        if not os.path.isfile(path):
            raise CommandError(f"No such file: {path}")
        consented_at: datetime | None = None
        if options["consent_date"]:
            try:
                consented_at = parse_consent_date(options["consent_date"])
            except ValueError as exc:
                raise CommandError(f"--consent-date: {exc}") from None
        defaults = Defaults(source=options["source"].strip(), consented_at=consented_at)
        bar = ProgressBar(os.path.getsize(path), self.stderr if sys.stderr.isatty() else None)
        started = time.monotonic()
        try:
            with open(path, "rb") as binary:
                report = import_subscribers(
                    binary,
                    encoding=options["encoding"],
                    region=options["region"].upper(),
                    defaults=defaults,
                    dry_run=options["dry_run"],
                    progress=bar.update,
                )
        except ImportAborted as exc:
            bar.finish()
            raise CommandError(str(exc)) from None
        bar.finish()
        for line in describe(report):
            self.stdout.write(line)
        if not report.ok:
            raise CommandError(f"{report.error_count} invalid line(s): nothing imported")
        if not report.dry_run:
            audit(report, user=None, file_name=os.path.basename(path))
        self.stdout.write(f"({report.lines} lines in {time.monotonic() - started:.1f} s)")


class ProgressBar:
    """[##########----------]  48%  (bytes of the file read so far)."""

    WIDTH = 30

    def __init__(self, total: int, out) -> None:
        self.total, self.out, self.shown = max(total, 1), out, -1

    def update(self, done: int) -> None:
        percent = min(100, done * 100 // self.total)
        if self.out is None or percent == self.shown:
            return
        self.shown = percent
        filled = self.WIDTH * percent // 100
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.out.write(f"\rChecking [{bar}] {percent:3d}%", ending="")
        self.out.flush()

    def finish(self) -> None:
        if self.out is not None and self.shown >= 0:
            self.out.write("")
