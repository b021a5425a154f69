"""The council's privacy notice for the WhatsApp channel, served at /privacy/ (Italian or
English), and the start-up check that no council or privacy setting is still an example.

The notice is the council's (it is the data controller): every fact in it comes from the
COUNCIL_… and PRIVACY_… settings, or from how Banditore works (what it stores, how long).
The chat's short notice links to it, and the consent ledger records PRIVACY_NOTICE_VERSION
with each consent.
"""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error
from django.shortcuts import render
from django.utils.translation import get_language_from_request, override
from django.views.decorators.http import require_GET

from channel.erasure import ERASURE_MEMORY_DAYS
from subscribers.conversation.grammar import council_phrases

LANGUAGES = ("it", "en")
# The example values deploy/settings.py and deploy/env.example ship with: a notice naming
# "Comune di Esempio" or an example.it address must never reach citizens.
EXAMPLES = {
    "COUNCIL_NAME": "Comune di Esempio",
    "COUNCIL_PHONE": "+39 0434 000000",
    "COUNCIL_ADDRESS": "Piazza del Municipio 1, 00000 Esempio",
}
EXAMPLE_DOMAIN = "example."
CHECKED = (
    "COUNCIL_NAME",
    "COUNCIL_PHONE",
    "COUNCIL_EMAIL",
    "COUNCIL_PEC",
    "COUNCIL_ADDRESS",
    "COUNCIL_WEBSITE",
    "COUNCIL_REPORTING_URL",
    "PRIVACY_DPO_NAME",
    "PRIVACY_DPO_EMAIL",
    "PRIVACY_NOTICE_URL",
)
REQUIRED = ("COUNCIL_NAME", "COUNCIL_ADDRESS", "PRIVACY_DPO_EMAIL", "PRIVACY_NOTICE_VERSION")


def notice_language(request) -> str:
    wanted = request.GET.get("lang", "")
    if wanted in LANGUAGES:
        return wanted
    found = get_language_from_request(request)
    return found if found in LANGUAGES else "it"


def notice_context() -> dict:
    return council_phrases() | {
        "address": settings.COUNCIL_ADDRESS,
        "phone": settings.COUNCIL_PHONE,
        "email": settings.COUNCIL_EMAIL,
        "pec": settings.COUNCIL_PEC,
        "website": settings.COUNCIL_WEBSITE,
        "dpo_name": settings.PRIVACY_DPO_NAME,
        "dpo_email": settings.PRIVACY_DPO_EMAIL,
        "version": settings.PRIVACY_NOTICE_VERSION,
        "status_days": settings.BANDITORE_WEBHOOK_ARCHIVE_DAYS,
        "erasure_memory_days": ERASURE_MEMORY_DAYS,
    }


@require_GET
def privacy_notice(request):
    language = notice_language(request)
    with override(language):
        response = render(
            request,
            f"subscribers/privacy_{language}.html",
            notice_context() | {"language": language},
        )
    response["Content-Language"] = language
    response["Vary"] = "Accept-Language"
    return response


def check_privacy_settings(app_configs=None, **kwargs) -> list[Error]:
    """With DEBUG off, every council and privacy setting must be the council's own."""
    if settings.DEBUG:
        return []
    problems = []
    for name in REQUIRED:
        if not str(getattr(settings, name)).strip():
            problems.append(
                Error(f"{name} is empty: the privacy notice needs it", id="subscribers.E001")
            )
    for name in CHECKED:
        value = str(getattr(settings, name))
        if value and (value == EXAMPLES.get(name) or EXAMPLE_DOMAIN in value.lower()):
            problems.append(
                Error(
                    f"{name} still holds its example value ({value!r}): set the council's own",
                    hint="See the README, Settings: COUNCIL_… and PRIVACY_….",
                    id="subscribers.E002",
                )
            )
    return problems
