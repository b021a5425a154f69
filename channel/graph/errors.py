"""What to do about each Meta error code, and when to try again.

We decide by Meta's error code, never by the HTTP status alone: Meta answers 400 for both
"fix your payload" and "this person is unreachable", and 429/5xx only sometimes.
Codes: https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from django.utils.translation import gettext_lazy as _


class Handling(StrEnum):
    TRANSIENT = "transient"  # retry with backoff, bounded
    THROTTLED = "throttled"  # our pace is too fast: retry soon, never counts as an attempt
    PAIR_RATE = "pair_rate"  # too many to this one person: back off them only
    RETRY_AFTER_DAY = "retry_after_day"  # per-user marketing cap: not before 24 h
    NEEDS_TEMPLATE = "needs_template"  # outside the 24-hour window: send the template
    RECIPIENT_UNREACHABLE = "recipient_unreachable"  # not on WhatsApp: stop for this person
    MARKETING_OPT_OUT = "marketing_opt_out"  # they stopped marketing: never send it again
    ACCOUNT_PAUSE = "account_pause"  # the whole account is blocked: pause everything
    INVALID = "invalid"  # our payload or template is wrong: fail this message, no retry
    MEDIA_GONE = "media_gone"  # Meta lost our uploaded media: upload it again, then retry
    # Meta's marketing experiment holds this marketing template back from this person: fail
    # this message only; they still get free-form and utility messages, so stay reachable.
    HELD_BACK = "held_back"
    UNKNOWN = "unknown"  # a code not in this table: failed, not retried, shown with Meta's title


_BY_CODE: dict[int, Handling] = {
    130429: Handling.THROTTLED,
    131056: Handling.PAIR_RATE,
    131049: Handling.RETRY_AFTER_DAY,
    131047: Handling.NEEDS_TEMPLATE,
    131026: Handling.RECIPIENT_UNREACHABLE,
    130403: Handling.RECIPIENT_UNREACHABLE,
    # "User's number is part of an experiment": marketing templates outside the customer
    # service window are not delivered to them; everything else is.
    # https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes
    130472: Handling.HELD_BACK,
    131050: Handling.MARKETING_OPT_OUT,
    # "Media upload error": the uploaded media id expired or Meta cannot use it. The sender
    # forgets the id (channel.graph.media.media_forget) and the retry uploads the file again;
    # a file Meta refuses outright fails at upload, before any message is sent.
    131053: Handling.MEDIA_GONE,
    # Transient on Meta's side: "try again".
    1: Handling.TRANSIENT,
    2: Handling.TRANSIENT,
    4: Handling.TRANSIENT,
    80007: Handling.TRANSIENT,
    131000: Handling.TRANSIENT,
    131016: Handling.TRANSIENT,
    131057: Handling.TRANSIENT,
    133004: Handling.TRANSIENT,
    133016: Handling.TRANSIENT,
    # The account cannot send at all until a person fixes something.
    0: Handling.ACCOUNT_PAUSE,
    3: Handling.ACCOUNT_PAUSE,
    10: Handling.ACCOUNT_PAUSE,
    33: Handling.ACCOUNT_PAUSE,
    190: Handling.ACCOUNT_PAUSE,
    368: Handling.ACCOUNT_PAUSE,
    130497: Handling.ACCOUNT_PAUSE,
    131005: Handling.ACCOUNT_PAUSE,
    131031: Handling.ACCOUNT_PAUSE,
    131042: Handling.ACCOUNT_PAUSE,
    131045: Handling.ACCOUNT_PAUSE,
    131048: Handling.ACCOUNT_PAUSE,
    131064: Handling.ACCOUNT_PAUSE,
    132015: Handling.ACCOUNT_PAUSE,
    132016: Handling.ACCOUNT_PAUSE,
    133010: Handling.ACCOUNT_PAUSE,
    # Our message is wrong: retrying the same payload cannot help.
    100: Handling.INVALID,
    131008: Handling.INVALID,
    131009: Handling.INVALID,
    131021: Handling.INVALID,
    131037: Handling.INVALID,
    131051: Handling.INVALID,
    131063: Handling.INVALID,
    132000: Handling.INVALID,
    132001: Handling.INVALID,
    132005: Handling.INVALID,
    132007: Handling.INVALID,
    132012: Handling.INVALID,
    132018: Handling.INVALID,
    132068: Handling.INVALID,
    132069: Handling.TRANSIENT,
    135000: Handling.INVALID,
}


# Seconds before the same message is tried again, by handling and attempt (1 for the first try).
# Posts, service messages and failures reported by status webhooks all wait this long; how many
# attempts a message gets is theirs to say.
_DELAYS: dict[Handling, Callable[[int], float]] = {
    Handling.THROTTLED: lambda attempt: 1.0,  # our pace: the rate limiter spaces the next try
    Handling.PAIR_RATE: lambda attempt: 4.0 ** min(attempt, 6),  # Meta: after 4^n seconds
    Handling.TRANSIENT: lambda attempt: min(3600.0, 2.0**attempt),
    Handling.RETRY_AFTER_DAY: lambda attempt: 86400.0,  # Meta: not before 24 hours
    Handling.MEDIA_GONE: lambda attempt: 5.0,  # after the upload again: bounded by attempts
}
# Another try of the same message may succeed later, after retry_delay.
RETRIABLE = frozenset(_DELAYS)
# Too fast, for the number or for the person: not the message's fault, so no attempt is spent.
ATTEMPT_FREE = frozenset({Handling.THROTTLED, Handling.PAIR_RATE})


def retry_delay(handling: Handling, attempt: int) -> float:
    """Seconds to wait before trying again after `attempt`; `handling` is one of RETRIABLE."""
    return _DELAYS[handling](attempt)


def handling_for(code: int | None, http_status: int | None = None) -> Handling:
    if code is not None:
        if code in _BY_CODE:
            return _BY_CODE[code]
        if 200 <= code <= 299:  # permission errors
            return Handling.ACCOUNT_PAUSE
        # A code Meta added since this table was written: the message fails and is not
        # retried (retrying blindly may repeat an account-level fault); editors see the code
        # and Meta's title in the results, and "resend failed" can try it again.
        return Handling.UNKNOWN
    if http_status == 429:
        return Handling.THROTTLED
    if http_status in (401, 403):
        return Handling.ACCOUNT_PAUSE
    if http_status is not None and 400 <= http_status < 500:
        return Handling.INVALID
    return Handling.TRANSIENT


_EXPLANATIONS = {
    0: _("WhatsApp refused our access token: an administrator must renew it."),
    190: _("The WhatsApp access token has expired: an administrator must renew it."),
    368: _("Meta restricted the account for a policy violation: sending is stopped."),
    130429: _("We sent faster than WhatsApp allows; the message was retried later."),
    131000: _("Temporary WhatsApp error; the message was retried."),
    131016: _("WhatsApp was temporarily unavailable; the message was retried."),
    133004: _("WhatsApp was temporarily unavailable; the message was retried."),
    131026: _("This number cannot receive WhatsApp messages (not on WhatsApp or app too old)."),
    131031: _("The WhatsApp account is locked: sending is stopped."),
    131047: _("More than 24 hours since the person last wrote: a template is needed."),
    131048: _("Too many messages were flagged as spam: sending is stopped. Check quality."),
    131049: _("WhatsApp held this message back to limit marketing; retry after 24 hours."),
    131050: _("The person stopped marketing messages from the council."),
    131053: _("WhatsApp could not use the post's media; it was uploaded again and retried."),
    130472: _(
        "WhatsApp held this marketing message back (Meta's experiment); the person still"
        " receives the other messages."
    ),
    131056: _("Too many messages to the same person in a short time; retried later."),
    132000: _("The template's parameters do not match the approved template."),
    132001: _("The template does not exist in this language or is not approved."),
    132015: _("The template was paused by Meta for low quality."),
    132016: _("The template was disabled by Meta."),
    100: _("WhatsApp rejected the message as malformed."),
}


def explain(code: int | None, meta_text: str = "") -> str:
    """A sentence an editor understands, for the failures table; `meta_text`: what Meta said
    (its title), shown for a code this table does not know."""
    if code is None:
        return str(_("No answer from WhatsApp (timeout or network error)."))
    if code in _EXPLANATIONS:
        return str(_EXPLANATIONS[code])
    handling = handling_for(code)
    if handling is Handling.ACCOUNT_PAUSE:
        return str(_("WhatsApp account problem (code %(code)s): sending is stopped.")) % {
            "code": code
        }
    if handling is Handling.INVALID:
        return str(_("WhatsApp rejected the message (code %(code)s).")) % {"code": code}
    if handling is Handling.UNKNOWN and meta_text:
        return str(_("WhatsApp error %(code)s, not retried: %(meta)s")) % {
            "code": code,
            "meta": meta_text[:200],
        }
    return str(_("WhatsApp error %(code)s.")) % {"code": code}
