"""The dashboard: an admin page beside the subscribers that draws the figures of
`subscribers.dashboard.queries` as charts."""

from __future__ import annotations

from django.template.response import TemplateResponse
from django.utils.translation import gettext as _

from subscribers.dashboard import charts
from subscribers.dashboard.queries import dashboard
from subscribers.dashboard.spend import spend
from subscribers.models import Subscriber


def dashboard_view(admin_site, request):
    """Staff only (admin_view); aggregate numbers, no phone numbers at all."""
    data = dashboard()
    labels = [f"{week:%d/%m}" for week in data.weeks]
    context = {
        **admin_site.each_context(request),
        "title": _("Dashboard"),
        "opts": Subscriber._meta,
        "data": data,
        "spend": spend(),
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
