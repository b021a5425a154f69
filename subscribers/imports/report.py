"""What an import tells its caller: the counts and the errors by line, in sentences for an
editor, and the audit-log entry."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils.translation import gettext as _

from topics.audit import record_audit

MAX_MESSAGES = 200  # errors listed; more are counted


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
