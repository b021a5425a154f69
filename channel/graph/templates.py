"""Message templates from Meta: `templates_sync()` reads every page of
GET /{WABA-ID}/message_templates and brings the MessageTemplate rows in line.
https://developers.facebook.com/docs/whatsapp/business-management-api/message-templates

Meta is the source of truth for what a template says (name, language, category, status,
quality, components, parameter format); the council keeps only its own choices (which template
posts use, which post field fills each body parameter). A template Meta no longer lists is
marked gone, never deleted (posts and the audit log point at it). Nothing is written unless
the whole listing was read: a failure half-way changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import httpx
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from channel import signals
from channel.graph.template_shapes import shape_from_components, suggested_fields
from channel.models import MessageTemplate

logger = logging.getLogger(__name__)

FIELDS = (
    "id,name,language,status,category,previous_category,components,parameter_format,"
    "quality_score,rejected_reason"
)
PAGE_SIZE = 100
# A business account holds at most 250 templates (Meta's error 2388019): 50 pages of 100 is
# far beyond any real listing, and stops a server that keeps answering with a `next`.
MAX_PAGES = 50


class TemplateSyncError(Exception):
    """The listing could not be read; nothing was changed."""


@dataclass
class SyncResult:
    pages: int = 0
    seen: int = 0
    created: list[str] = field(default_factory=list)
    status_changed: list[str] = field(default_factory=list)  # "name (it): approved → paused"
    category_changed: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.status_changed or self.category_changed or self.gone)

    def summary(self) -> str:
        parts = [f"{self.seen} templates read from Meta ({self.pages} pages)"]
        for label, items in (
            ("new", self.created),
            ("status changed", self.status_changed),
            ("category changed", self.category_changed),
            ("gone from Meta", self.gone),
        ):
            if items:
                parts.append(f"{label}: {', '.join(items)}")
        return "; ".join(parts)


def _get(url: str, params: dict) -> dict:
    """One page of the listing (a few a night: a plain httpx request, which honours
    HTTPS_PROXY/NO_PROXY). Raises TemplateSyncError with Meta's own words."""
    headers = {"Authorization": f"Bearer {settings.WHATSAPP_ACCESS_TOKEN}"}
    try:
        response = httpx.get(
            url, params=params, headers=headers, timeout=float(settings.BANDITORE_HTTP_TIMEOUT)
        )
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise TemplateSyncError(f"Meta did not list the templates: {exc!r}"[:500]) from exc
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) or not response.is_success or not isinstance(body, dict):
        detail = error.get("message", "") if isinstance(error, dict) else ""
        raise TemplateSyncError(
            f"Meta did not list the templates: HTTP {response.status_code} {detail}"[:500]
        )
    return body


def fetch_templates() -> tuple[list[dict], int]:
    """Every template of the business account, following Meta's cursor paging to the last
    page (the one without `paging.next`). Raises TemplateSyncError."""
    waba = settings.WHATSAPP_BUSINESS_ACCOUNT_ID
    if not waba:
        raise TemplateSyncError(
            "WHATSAPP_BUSINESS_ACCOUNT_ID is not set: the id of the WhatsApp Business Account "
            "(WhatsApp Manager → Account tools), whose templates are read."
        )
    base = settings.WHATSAPP_GRAPH_URL.rstrip("/")
    url = f"{base}/{settings.WHATSAPP_API_VERSION}/{waba}/message_templates"
    items, after, seen_cursors = [], None, set()
    for page in range(1, MAX_PAGES + 1):
        # The next page is asked of our own Graph URL with the `after` cursor, never of the
        # address in `paging.next`: the access token goes to no other host.
        params = {"fields": FIELDS, "limit": PAGE_SIZE} | ({"after": after} if after else {})
        answer = _get(url, params)
        data = answer.get("data")
        if not isinstance(data, list):
            raise TemplateSyncError("Meta's answer has no list of templates (`data`).")
        items.extend(item for item in data if isinstance(item, dict))
        paging = answer.get("paging") if isinstance(answer.get("paging"), dict) else {}
        cursors = paging.get("cursors") if isinstance(paging.get("cursors"), dict) else {}
        after = cursors.get("after")
        if not paging.get("next") or not data:
            return items, page
        if not isinstance(after, str) or not after or after in seen_cursors:
            raise TemplateSyncError("Meta's paging has a `next` page but no new cursor.")
        seen_cursors.add(after)
    raise TemplateSyncError(f"More than {MAX_PAGES} pages of templates: stopped.")


def _lower(value, limit: int) -> str:
    return str(value or "").strip().lower()[:limit]


def _header(shape) -> str:
    if shape.header_param is not None:
        return MessageTemplate.Header.TEXT
    if shape.header_format in ("IMAGE", "VIDEO", "DOCUMENT"):
        return MessageTemplate.Header.MEDIA
    return MessageTemplate.Header.NONE


def _apply(row: MessageTemplate, item: dict, now) -> list[str]:
    """Copy Meta's facts onto the row; return the names of the changed fields."""
    named = _lower(item.get("parameter_format"), 16) == "named"
    components = item.get("components") if isinstance(item.get("components"), list) else []
    shape = shape_from_components(components, named)
    quality = item.get("quality_score")
    values = {
        "meta_id": str(item.get("id") or "")[:64],
        "status": _lower(item.get("status"), 16),
        "category": _lower(item.get("category"), 16),
        "parameter_format": "named" if named else "positional",
        "components": components,
        "quality_score": _lower(quality.get("score") if isinstance(quality, dict) else "", 16),
        "rejected_reason": str(item.get("rejected_reason") or "").replace("NONE", "")[:200],
        "body_text": shape.body_text,
        "header": _header(shape),
        "gone_at": None,
    }
    # The council's choice of post fields stays while it fits the template's parameters.
    if len(row.body_parameters or []) != len(shape.body_params):
        values["body_parameters"] = suggested_fields(shape)
    changed = [name for name, value in values.items() if getattr(row, name) != value]
    for name, value in values.items():
        setattr(row, name, value)
    row.synced_at = now
    return changed


def templates_sync(user=None) -> SyncResult:
    """Read every template from Meta and update, add or mark gone the rows. Raises
    TemplateSyncError (nothing changed) when the listing cannot be read. `user`: who asked
    (the admin button), for the audit log; None for the command and the nightly task."""
    items, pages = fetch_templates()
    result, now = SyncResult(pages=pages), timezone.now()
    listed = set()
    with transaction.atomic():
        rows = {(r.name, r.language): r for r in MessageTemplate.objects.select_for_update()}
        for item in items:
            name, language = str(item.get("name") or "")[:512], str(item.get("language") or "")
            if not name or not language or (name, language) in listed:
                continue
            listed.add((name, language))
            result.seen += 1
            label = f"{name} ({language})"
            row = rows.get((name, language))
            created = row is None
            if created:
                row = MessageTemplate(name=name, language=language[:15])
            old_status, old_category = row.status, row.category
            _apply(row, item, now)
            previous = _lower(item.get("previous_category"), 16)
            if not created and old_status != row.status:
                result.status_changed.append(f"{label}: {old_status} → {row.status}")
            moved_from = old_category if not created and old_category != row.category else ""
            if created and previous and previous != row.category:
                moved_from = previous  # Meta re-categorised it before we first saw it
            if moved_from:
                row.category_changed_from, row.category_changed_at = moved_from, now
                result.category_changed.append(f"{label}: {moved_from} → {row.category}")
                logger.warning(
                    "template %s: Meta changed its category from %s to %s",
                    label,
                    moved_from,
                    row.category,
                )
            row.save()
            if created:
                result.created.append(label)
        for key, row in rows.items():
            if key not in listed and row.gone_at is None:
                row.gone_at = now
                row.save(update_fields=["gone_at", "updated_at"])
                result.gone.append(f"{row.name} ({row.language})")
        signals.templates_synced.send(sender=MessageTemplate, user=user, result=result)
    logger.info("template sync: %s", result.summary())
    return result


# --- webhooks: Meta tells us at once when a template changes -------------------------------


@dataclass(frozen=True)
class TemplateEvent:
    """One of Meta's template webhooks (fields `message_template_status_update`,
    `template_category_update`, `message_template_quality_update`:
    https://developers.facebook.com/docs/whatsapp/business-management-api/message-templates)."""

    meta_id: str
    name: str
    language: str
    status: str = ""  # the event, lowercased: approved, rejected, paused, disabled…
    category: str = ""  # the new category
    quality: str = ""  # the new quality score
    reason: str = ""


# Events that say the template is back in service, and ones that are not a status.
_BACK_TO_APPROVED = {"reinstated", "unpaused"}
_NOT_A_STATUS = {"flagged"}  # quality fell: still approved until Meta pauses it


def template_events_apply(events: list[TemplateEvent]) -> SyncResult:
    """Apply Meta's template webhooks to the rows they name (by Meta's id, else name and
    language): a status other than approved stops sends at once, a category change is flagged
    as by the sync. A template we have never synced is left to the next sync."""
    result, now = SyncResult(), timezone.now()
    for event in events:
        rows = MessageTemplate.objects.select_for_update()
        row = rows.filter(meta_id=event.meta_id).first() if event.meta_id else None
        if row is None and event.name:
            row = rows.filter(name=event.name, language=event.language).first()
        if row is None:
            continue
        label, fields = f"{row.name} ({row.language})", ["updated_at"]
        status = "approved" if event.status in _BACK_TO_APPROVED else event.status[:16]
        if status and status not in _NOT_A_STATUS and status != row.status:
            result.status_changed.append(f"{label}: {row.status} → {status}")
            row.status = status
            fields += ["status"]
            if event.reason and event.reason.upper() != "NONE":
                row.rejected_reason = event.reason[:200]
                fields += ["rejected_reason"]
        if event.quality or event.status == "flagged":
            row.quality_score = (event.quality or "red")[:16]
            fields += ["quality_score"]
        if event.category and event.category[:16] != row.category:
            line = f"{label}: {row.category} → {event.category[:16]}"
            result.category_changed.append(line)
            logger.warning("template %s: Meta changed its category (webhook)", line)
            row.category_changed_from, row.category_changed_at = row.category, now
            row.category = event.category[:16]
            fields += ["category", "category_changed_from", "category_changed_at"]
        row.save(update_fields=fields)
    if result.changed:
        signals.templates_synced.send(sender=MessageTemplate, user=None, result=result)
    return result
