"""Two admin pages beside the subscribers: the dashboard and the CSV import.

Views only parse, check rights and call `subscribers.dashboard` / `subscribers.imports`.
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from subscribers import charts, imports
from subscribers.dashboard import dashboard
from subscribers.models import Subscriber

MAX_UPLOAD_BYTES = 50 * 1024 * 1024


def _context(admin_site, request, title: str) -> dict:
    return {**admin_site.each_context(request), "title": title, "opts": Subscriber._meta}


def dashboard_view(admin_site, request):
    """Staff only (admin_view); aggregate numbers, no phone numbers at all."""
    data = dashboard()
    labels = [f"{week:%d/%m}" for week in data.weeks]
    context = _context(admin_site, request, _("Cruscotto"))
    context |= {
        "data": data,
        "total_chart": charts.line_chart(
            labels,
            [charts.Series(_("Iscritti attivi"), data.total_weekly)],
            title=_("Iscritti attivi, settimana per settimana"),
        ),
        "joins_chart": charts.bar_chart(
            labels,
            [j for _w, j, _l in data.joins_leaves],
            [lv for _w, _j, lv in data.joins_leaves],
            title=_("Iscrizioni e cancellazioni per settimana"),
            up_name=_("Iscrizioni"),
            down_name=_("Cancellazioni"),
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
        label=gettext_lazy("File CSV"),
        help_text=gettext_lazy(
            "Colonne: numero, argomenti (facoltativa, separati da ;), data_consenso, fonte. "
            "La prima riga contiene i nomi delle colonne."
        ),
    )
    encoding = forms.ChoiceField(
        label=gettext_lazy("Codifica"),
        choices=[
            ("utf-8", gettext_lazy("UTF-8 (consigliata: «CSV UTF-8» in Excel)")),
            ("windows-1252", gettext_lazy("Windows-1252 (CSV normale di Excel per Windows)")),
        ],
        initial="utf-8",
    )
    source = forms.CharField(
        label=gettext_lazy("Fonte del consenso per le righe senza fonte"),
        required=False,
        max_length=150,
        help_text=gettext_lazy("Per esempio «modulo cartaceo sportello 2024»."),
    )
    consent_date = forms.DateField(
        label=gettext_lazy("Data del consenso per le righe senza data"),
        required=False,
        input_formats=["%d/%m/%Y", "%Y-%m-%d"],
        help_text=gettext_lazy("gg/mm/aaaa"),
    )
    dry_run = forms.BooleanField(
        label=gettext_lazy("Solo verifica: controlla il file senza importare nulla"),
        required=False,
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                _("File troppo grande (più di 50 MB): usa il comando import_subscribers.")
            )
        return upload

    def clean_consent_date(self):
        day = self.cleaned_data["consent_date"]
        if day is None:
            return None
        try:
            return imports.parse_consent_date(day.isoformat())
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


def import_view(admin_site, request):
    if not request.user.has_perm("subscribers.import_subscribers"):
        raise PermissionDenied
    context = _context(admin_site, request, _("Importa iscritti da un file CSV"))
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        defaults = imports.Defaults(
            source=data["source"].strip(), consented_at=data["consent_date"]
        )
        upload = data["file"]
        try:
            report = imports.import_subscribers(
                upload, encoding=data["encoding"], defaults=defaults, dry_run=data["dry_run"]
            )
        except imports.ImportAborted as exc:
            context["problem"] = str(exc)
        else:
            if report.ok and not report.dry_run:
                imports.audit(report, user=request.user, file_name=upload.name)
            context["report"] = report
            context["report_lines"] = imports.describe(report)
        context["finished_at"] = timezone.now()
    context["form"] = form
    return TemplateResponse(request, "admin/subscribers/import.html", context)
