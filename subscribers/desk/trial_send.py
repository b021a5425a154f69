"""“Send a test”: the post, exactly as subscribers will get it, to the staff's own phones only.

The numbers come from BANDITORE_TEST_NUMBERS and nowhere else, so a test can never reach a
citizen: no delivery row is created and the post's status does not change. Each message is a
service message (channel.OutboundMessage, lane "test") sent at once through the same Graph
client and Redis rate limiter as everything else, in the priority lane, so the editor sees the
outcome on the next page. The payloads are built by subscribers.delivery.payloads, the code the
sender uses, so the test shows what the real send will look like.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Max
from django.utils.translation import gettext as _

from channel.graph.account import is_paused
from channel.graph.errors import explain
from channel.graph.media import MediaUploadError
from channel.graph.payloads import by_media_id
from channel.graph.window import in_window, window_cutoff
from channel.models import InboundMessage, OutboundMessage, OutboundStatus
from channel.service_messages import SendOutcome, send_outbound_later, send_outbound_message
from subscribers.delivery.media import post_media_id
from subscribers.delivery.payloads import (
    Recipient,
    TemplateMismatch,
    default_template,
    free_form_payload,
    template_payload,
)
from subscribers.delivery.publishing import PublishError, audit
from subscribers.models import Subscriber, mask_phone
from topics.models import Post


@dataclass(frozen=True)
class TrialResult:
    number: str  # masked
    version: str  # "free_form" or "template"
    ok: bool
    detail: str


def trial_numbers() -> list[str]:
    return list(settings.BANDITORE_TEST_NUMBERS)


def _recipient(wa_id: str) -> Recipient:
    """The staff phone as the sender would see it: its language and its 24-hour window, from
    its subscriber row if it has one, and from the messages it sent us."""
    person = Subscriber.objects.filter(wa_id=wa_id).values("language", "last_inbound_at").first()
    # Staff phones are seldom subscribers: their last message is in the inbound log (a scan of
    # the last day's messages, acceptable for a button pressed by hand).
    last_message = InboundMessage.objects.filter(
        wa_id=wa_id, sent_at__gt=window_cutoff()
    ).aggregate(at=Max("sent_at"))["at"]
    moments: list[datetime] = [
        at for at in (last_message, person and person["last_inbound_at"]) if at is not None
    ]
    return Recipient(
        wa_id=wa_id,
        user_id=None,
        language=(person or {}).get("language") or "it",
        last_inbound_at=max(moments) if moments else None,
    )


def _send(payload: dict, wa_id: str) -> tuple[bool, str]:
    outbound = OutboundMessage.objects.create(
        lane=OutboundMessage.Lane.TEST, to_wa_id=wa_id, payload=payload
    )
    outcome, retry_in = send_outbound_message(outbound_id=outbound.pk)
    if outcome == SendOutcome.SENT:
        return True, _("sent: it should arrive on the phone in a few seconds")
    if outcome in (SendOutcome.THROTTLED, SendOutcome.RETRY):
        send_outbound_later(outbound_id=outbound.pk, countdown=retry_in)
        return True, _("WhatsApp is busy: it will be sent within %(s)d seconds") % {
            "s": max(1, round(retry_in))
        }
    if outcome == SendOutcome.UNCERTAIN:
        return False, _("no answer from WhatsApp: it may still arrive; do not resend at once")
    if outcome == SendOutcome.PAUSED:
        return False, _("sending is paused because of a WhatsApp account problem")
    outbound.refresh_from_db(fields=["last_error_code", "status"])
    if outbound.status == OutboundStatus.FAILED:
        return False, explain(outbound.last_error_code)
    return False, _("not sent")


def post_send_test(*, post: Post, user=None) -> list[TrialResult]:
    """Send both versions of the post to each staff test number and say what happened.

    The template goes to every test number; the free-form message only to those that wrote to
    the council's number in the last 24 hours (WhatsApp refuses it otherwise).
    """
    numbers = trial_numbers()
    if not numbers:
        raise PublishError(
            _(
                "No test numbers are set. An administrator lists the staff phones in the "
                "BANDITORE_TEST_NUMBERS setting."
            )
        )
    if is_paused():
        raise PublishError(
            _("Sending is paused because of a WhatsApp account problem; resume it first.")
        )
    try:
        # Uploaded now, the file's id is the one the broadcast reuses (subscribers.delivery.media).
        media_id = post_media_id(post)
    except MediaUploadError as error:
        raise PublishError(
            _("WhatsApp did not accept the post's file: %(error)s") % {"error": error.text}
        ) from None

    def by_id(payload: dict) -> dict:
        return by_media_id(payload, media_id) if media_id else payload

    results = []
    for wa_id in numbers:
        recipient = _recipient(wa_id)
        template = default_template(recipient.language)
        masked = mask_phone(wa_id)
        if in_window(recipient.last_inbound_at):
            ok, detail = _send(by_id(free_form_payload(post, recipient)), wa_id)
            results.append(TrialResult(masked, "free_form", ok, detail))
        else:
            detail = _(
                "not sent: this phone has not written to the council's number in the last 24 "
                "hours, and WhatsApp allows the free-form message only then. Send it any "
                "message and test again to see this version too."
            )
            results.append(TrialResult(masked, "free_form", False, detail))
        if template is None:
            detail = _("not sent: there is no approved template (Message templates).")
            results.append(TrialResult(masked, "template", False, detail))
        else:
            try:
                payload = template_payload(post, recipient, template)
            except TemplateMismatch as exc:  # e.g. a link button and a post without a link
                ok, detail = False, _("not sent: %(why)s") % {"why": exc}
            else:
                ok, detail = _send(by_id(payload), wa_id)
            results.append(TrialResult(masked, "template", ok, detail))
    audit(
        action="test_send",
        post=post,
        user=user,
        results=[
            {"to": r.number, "version": r.version, "ok": r.ok, "detail": str(r.detail)}
            for r in results
        ],
    )
    return results
