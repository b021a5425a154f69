"""The admin page that imports a CSV file of subscribers: it parses the form, checks the
permission and calls `subscribers.imports.loading`."""

from __future__ import annotations

from django import forms
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from subscribers.imports.loading import import_subscribers
from subscribers.imports.parsing import Defaults, parse_consent_date
from subscribers.imports.report import ImportAborted, audit, describe
from subscribers.models import Subscriber

MAX_UPLOAD_BYTES = 50 * 1024 * 1024


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
            return parse_consent_date(day.isoformat())
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


def import_view(admin_site, request):
    if not request.user.has_perm("subscribers.import_subscribers"):
        raise PermissionDenied
    context = {
        **admin_site.each_context(request),
        "title": _("Import subscribers from a CSV file"),
        "opts": Subscriber._meta,
    }
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        defaults = Defaults(source=data["source"].strip(), consented_at=data["consent_date"])
        upload = data["file"]
        try:
            report = import_subscribers(
                upload, encoding=data["encoding"], defaults=defaults, dry_run=data["dry_run"]
            )
        except ImportAborted as exc:
            context["problem"] = str(exc)
        else:
            if report.ok and not report.dry_run:
                audit(report, user=request.user, file_name=upload.name)
            context["report"] = report
            context["report_lines"] = describe(report)
        context["finished_at"] = timezone.now()
    context["form"] = form
    return TemplateResponse(request, "admin/subscribers/import.html", context)
