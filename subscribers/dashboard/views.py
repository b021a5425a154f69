"""Two admin pages beside the subscribers: the dashboard and the CSV import.

Views only parse, check rights and call `subscribers.dashboard.queries` / `subscribers.imports.loading`.
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from subscribers.dashboard import charts
from subscribers.dashboard.queries import dashboard
from subscribers.imports import loading
from subscribers.models import Subscriber

MAX_UPLOAD_BYTES = 50 * 1024 * 1024


def _context(admin_site, request, title: str) -> dict:
    return {**admin_site.each_context(request), "title": title, "opts": Subscriber._meta}


def dashboard_view(admin_site, request):
    """Staff only (admin_view); aggregate numbers, no phone numbers at all."""
    data = dashboard()
    labels = [f"{week:%d/%m}" for week in data.weeks]
    context = _context(admin_site, request, _("Dashboard"))
    context |= {
        "data": data,
        "total_chart": charts.line_chart(
            labels,
            [charts.Series(_("Active subscribers"), data.total_weekly)],
            title=_("Active subscribers, week by week"),
        ),
        "joins_chart": charts.bar_chart(
            labels,
            [j for _w, j, _l in data.joins_leaves],
            [lv for _w, _j, lv in data.joins_leaves],
            title=_("Joins and leaves per week"),
            up_name=_("Joins"),
            down_name=_("Leaves"),
        ),
        "topic_rows": [
            (row, charts.sparkline(row.weekly, title=str(row.topic))) for row in data.topics
        ],
        "joins_total": sum(j for _w, j, _l in data.joins_leaves),
        "leaves_total": sum(lv for _w, _j, lv in data.joins_leaves),
    }
    return TemplateResponse(request, "admin/subscribers/dashboard.html", context)


class ImportForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("CSV file"),
        help_text=gettext_lazy(
            "Columns: numero (number), argomenti (topics, optional, separated by ;), "
            "data_consenso (consent date), fonte (source). The first line holds the column names."
        ),
    )
    encoding = forms.ChoiceField(
        label=gettext_lazy("Encoding"),
        choices=[
            ("utf-8", gettext_lazy("UTF-8 (recommended: “CSV UTF-8” in Excel)")),
            ("windows-1252", gettext_lazy("Windows-1252 (plain CSV from Excel for Windows)")),
        ],
        initial="utf-8",
    )
    source = forms.CharField(
        label=gettext_lazy("Consent source for lines without one"),
        required=False,
        max_length=150,
        help_text=gettext_lazy("For example “paper form, front desk 2024”."),
    )
    consent_date = forms.DateField(
        label=gettext_lazy("Consent date for lines without one"),
        required=False,
        input_formats=["%d/%m/%Y", "%Y-%m-%d"],
        help_text=gettext_lazy("dd/mm/yyyy"),
    )
    dry_run = forms.BooleanField(
        label=gettext_lazy("Check only: verify the file without importing anything"),
        required=False,
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                _("File too large (over 50 MB): use the import_subscribers command.")
            )
        return upload

    def clean_consent_date(self):
        day = self.cleaned_data["consent_date"]
        if day is None:
            return None
        try:
            return loading.parse_consent_date(day.isoformat())
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


def import_view(admin_site, request):
    if not request.user.has_perm("subscribers.import_subscribers"):
        raise PermissionDenied
    context = _context(admin_site, request, _("Import subscribers from a CSV file"))
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        defaults = loading.Defaults(
            source=data["source"].strip(), consented_at=data["consent_date"]
        )
        upload = data["file"]
        try:
            report = loading.import_subscribers(
                upload, encoding=data["encoding"], defaults=defaults, dry_run=data["dry_run"]
            )
        except loading.ImportAborted as exc:
            context["problem"] = str(exc)
        else:
            if report.ok and not report.dry_run:
                loading.audit(report, user=request.user, file_name=upload.name)
            context["report"] = report
            context["report_lines"] = loading.describe(report)
        context["finished_at"] = timezone.now()
    context["form"] = form
    return TemplateResponse(request, "admin/subscribers/import.html", context)
