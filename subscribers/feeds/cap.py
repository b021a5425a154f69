"""Common Alerting Protocol 1.2 alerts read with defusedxml: what a post needs, nothing more.

The standard: https://docs.oasis-open.org/emergency/cap/v1.2/CAP-v1.2.html (also 1.1, whose
elements we read are the same). Namespaces are ignored so that both versions read alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from subscribers.feeds.area import AlertArea, AreaError, parse_circle, parse_polygon
from subscribers.feeds.fetching import FeedError

SEVERITIES = {"Extreme", "Severe", "Moderate", "Minor", "Unknown"}
URGENCIES = {"Immediate", "Expected", "Future", "Past", "Unknown"}
CERTAINTIES = {"Observed", "Likely", "Possible", "Unlikely", "Unknown"}
RULE_FIELDS = {"severity": SEVERITIES, "urgency": URGENCIES, "certainty": CERTAINTIES}


@dataclass(frozen=True)
class CapInfo:
    language: str
    event: str
    headline: str
    description: str
    instruction: str
    web: str
    severity: str
    urgency: str
    certainty: str
    expires: datetime | None
    area: AlertArea


@dataclass(frozen=True)
class CapAlert:
    identifier: str
    sender: str
    status: str  # Actual, Exercise, System, Test, Draft
    msg_type: str  # Alert, Update, Cancel, Ack, Error
    scope: str
    references: tuple[str, ...]  # identifiers of the earlier alerts it updates or cancels
    infos: tuple[CapInfo, ...]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element, name: str):
    return next((child for child in element if _local(child.tag) == name), None)


def _children(element, name: str) -> list:
    return [child for child in element if _local(child.tag) == name]


def _text(element, name: str) -> str:
    child = _child(element, name)
    return (child.text or "").strip() if child is not None else ""


def parse_xml(body: bytes):
    """The root element; FeedError for hostile or broken XML (no entities, no DTD fetches)."""
    try:
        return SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as error:
        raise FeedError(
            _("The alert declares XML entities or a DTD (%(kind)s): refused as unsafe.")
            % {"kind": type(error).__name__}
        ) from None
    except SafeET.ParseError as error:
        raise FeedError(
            _("The address does not answer XML (%(error)s).") % {"error": error}
        ) from None


def is_alert(root) -> bool:
    return _local(root.tag) == "alert"


def cap_alert(root) -> CapAlert:
    """The alert under `root`; FeedError when it lacks what CAP requires of every alert."""
    identifier = _text(root, "identifier")
    if not identifier:
        raise FeedError(_("A CAP alert without an identifier: not read."))
    references = tuple(
        part.split(",")[1] if part.count(",") == 2 else part
        for part in _text(root, "references").split()
    )
    return CapAlert(
        identifier=identifier,
        sender=_text(root, "sender"),
        status=_text(root, "status"),
        msg_type=_text(root, "msgType"),
        scope=_text(root, "scope"),
        references=references,
        infos=tuple(_info(info) for info in _children(root, "info")),
    )


def _info(element) -> CapInfo:
    geocodes, polygons, circles = [], [], []
    for area in _children(element, "area"):
        for geocode in _children(area, "geocode"):
            geocodes.append((_text(geocode, "valueName"), _text(geocode, "value")))
        try:
            polygons += [parse_polygon(p.text or "") for p in _children(area, "polygon")]
            circles += [parse_circle(c.text or "") for c in _children(area, "circle")]
        except AreaError as error:
            raise FeedError(
                _("A CAP alert with a malformed area: %(error)s.") % {"error": error}
            ) from None
    expires = None
    if raw := _text(element, "expires"):
        try:
            expires = parse_datetime(raw)
        except ValueError:
            expires = None
        if expires is None:
            raise FeedError(
                _("A CAP alert with an unreadable expiry: %(value)s.") % {"value": raw[:40]}
            )
    return CapInfo(
        language=_text(element, "language") or "en-US",  # CAP's default language
        event=_text(element, "event"),
        headline=_text(element, "headline"),
        description=_text(element, "description"),
        instruction=_text(element, "instruction"),
        web=_text(element, "web"),
        severity=_text(element, "severity"),
        urgency=_text(element, "urgency"),
        certainty=_text(element, "certainty"),
        expires=expires,
        area=AlertArea(geocodes=tuple(geocodes), polygons=tuple(polygons), circles=tuple(circles)),
    )


def preferred_info(alert: CapAlert, languages: tuple[str, ...] = ("it", "en")) -> CapInfo | None:
    """The alert's block in the first language we speak (Italian first), else its first one."""
    for language in languages:
        for info in alert.infos:
            if info.language.lower().split("-")[0] == language:
                return info
    return alert.infos[0] if alert.infos else None


def parse_urgent_rule(text: str) -> dict[str, set[str]]:
    """'severity=Extreme,Severe urgency=Immediate,Expected' → which values make a post urgent."""
    rule: dict[str, set[str]] = {}
    for clause in text.split():
        name, sep, values = clause.partition("=")
        if not sep or name not in RULE_FIELDS:
            raise ValueError(
                f"{clause!r}: write field=Value,Value with field one of "
                f"{', '.join(sorted(RULE_FIELDS))}"
            )
        chosen = {value for value in values.split(",") if value}
        unknown = chosen - RULE_FIELDS[name]
        if unknown or not chosen:
            raise ValueError(f"{clause!r}: {name} is one of {', '.join(sorted(RULE_FIELDS[name]))}")
        rule[name] = chosen
    return rule


def is_urgent(info: CapInfo, rule: dict[str, set[str]]) -> bool:
    return all(getattr(info, name) in values for name, values in rule.items())
