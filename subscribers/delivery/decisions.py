"""What a failed send leads to, one rule whether Meta says so in the send's answer
(subscribers.delivery.settling) or later in a status webhook (subscribers.delivery.statuses):
Meta often accepts a send, then reports its failure by webhook.
https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from channel.graph.errors import ATTEMPT_FREE, RETRIABLE, Handling, retry_delay


@dataclass(frozen=True)
class Decision:
    """`status`: queued (another try), failed or cancelled (its post stopped)."""

    status: str
    delay: float = 0.0  # seconds before the next try
    give_back: int = 0  # 1: the attempt is not counted (the fault was not the message's)
    template: bool | None = None  # the next try is a template message (None: as this one)
    unreachable: bool = False  # the person is not on WhatsApp
    opted_out: bool = False  # the person stopped marketing messages
    pause: bool = False  # the whole account is blocked: pause every send


def failure_decision(handling: Handling, *, attempts: int, template: bool, going: bool) -> Decision:
    """`attempts`: counting the one that failed; `template`: it was a template message;
    `going`: its post still sends (else a row that would be queued again is cancelled)."""
    if handling == Handling.ACCOUNT_PAUSE:
        decision = Decision("queued", give_back=1, pause=True)
    elif handling == Handling.NEEDS_TEMPLATE and not template:
        decision = Decision("queued", give_back=1, template=True)
    elif handling in ATTEMPT_FREE:
        decision = Decision("queued", retry_delay(handling, attempts), give_back=1)
    elif handling in RETRIABLE and attempts < settings.BANDITORE_MAX_ATTEMPTS:
        decision = Decision("queued", retry_delay(handling, attempts))
    else:
        return Decision(
            "failed",
            unreachable=handling == Handling.RECIPIENT_UNREACHABLE,
            opted_out=handling == Handling.MARKETING_OPT_OUT,
        )
    return decision if going else Decision("cancelled", pause=decision.pause)
