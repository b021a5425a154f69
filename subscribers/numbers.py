"""Phone numbers as WhatsApp knows them: E.164 digits without the '+' (Meta's wa_id), from
what people type ('+39 333 123 4567', '0039 333…', '333 1234567'), with phonenumbers."""

from __future__ import annotations

import phonenumbers
from django.utils.translation import gettext as _

# Numbers typed without a country code are the council's country's.
DEFAULT_REGION = "IT"


def normalise_number(raw: str, region: str = DEFAULT_REGION) -> str:
    """'+39 333 123 4567', '0039 333…', '333 1234567', '393331234567' → '393331234567'
    (E.164 digits without '+', as Meta's wa_id). Raises ValueError with the reason."""
    text = raw.strip()
    if not text:
        raise ValueError(_("number missing"))
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not _is_valid(number):
        raise ValueError(_("“%(number)s” is not a valid phone number") % {"number": text})
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]


def _is_valid(number: phonenumbers.PhoneNumber) -> bool:
    # Checking against the country's main region first is twice as fast as is_valid_number,
    # which first works out the region among all those sharing the code (+39: Italy, Vatican).
    main_region = phonenumbers.region_code_for_country_code(number.country_code)
    return phonenumbers.is_valid_number_for_region(
        number, main_region
    ) or phonenumbers.is_valid_number(number)
