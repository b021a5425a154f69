"""Start-up check: the alert settings must parse, or every CAP poll would fail later."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error

from subscribers.feeds.area import AreaError, council_area
from subscribers.feeds.cap import parse_urgent_rule


def check_feed_settings(app_configs=None, **kwargs) -> list[Error]:
    errors = []
    try:
        council_area(settings.BANDITORE_CAP_AREA_CODES, settings.BANDITORE_CAP_AREA_POLYGON)
    except AreaError as error:
        errors.append(Error(f"BANDITORE_CAP_AREA_CODES / _POLYGON: {error}", id="feeds.E001"))
    try:
        parse_urgent_rule(settings.BANDITORE_CAP_URGENT)
    except ValueError as error:
        errors.append(Error(f"BANDITORE_CAP_URGENT: {error}", id="feeds.E002"))
    return errors
