"""What a WhatsApp user's identifiers look like: the phone number (`wa_id`) and, from 2026,
the business-scoped user id (BSUID, `user_id`). One place for both rules: the webhook parser
checks senders with them, and the columns that keep them are this wide.

A BSUID is the person's ISO 3166 alpha-2 country code, a period and up to 128 alphanumeric
characters (`US.13491208655302741918`); a parent BSUID puts `ENT.` after the country code
(https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids).
"""

from __future__ import annotations

import re

# The longest documented id: "CC.ENT." and 128 characters.
USER_ID_MAX_LENGTH = 135
_USER_ID = re.compile(r"[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}")
# E.164 digits without "+": what Meta's wa_id holds (and Subscriber's check constraint).
WA_ID_PATTERN = r"^[1-9][0-9]{6,14}$"
_WA_ID = re.compile(WA_ID_PATTERN[1:-1])


def is_user_id(value: str) -> bool:
    return bool(_USER_ID.fullmatch(value))


def is_wa_id(value: str) -> bool:
    return bool(_WA_ID.fullmatch(value))
