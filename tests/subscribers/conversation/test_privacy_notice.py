"""The council's privacy notice: served at /privacy/ in both languages from the settings, linked
from the chat, its version in the ledger; start-up refuses example values; the council's name
is grammatical Italian in every text."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from subscribers.conversation import texts
from subscribers.conversation.grammar import article_of, council_phrases
from subscribers.conversation.machine import ACCEPT
from subscribers.conversation.privacy import check_privacy_settings
from subscribers.models import ConsentEvent
from tests.channel.webhook.helpers import text_item
from tests.deploy.helpers import COUNCIL
from tests.subscribers.conversation import test_erasure
from tests.subscribers.conversation.test_erasure import tap

chat, fast = test_erasure.chat, test_erasure.fast  # the same conversation fixtures

REAL = {
    **COUNCIL,
    "PRIVACY_DPO_NAME": "Avv. Paola Rossi",
    "PRIVACY_DPO_EMAIL": "dpo@comune.pordenone.it",
    "PRIVACY_NOTICE_URL": "https://banditore.comune.pordenone.it/privacy/",
    "PRIVACY_NOTICE_VERSION": "2026-05",
}


@pytest.mark.django_db
@override_settings(**REAL)
def test_the_notice_names_controller_dpo_purpose_basis_retention_meta_rights_and_the_garante(
    client,
):
    page = client.get("/privacy/")

    assert page.status_code == 200 and page["Content-Language"] == "it"
    html = page.content.decode()
    for fact in [
        "Informativa sul trattamento dei dati personali – canale WhatsApp del Comune di Pordenone",
        "Versione 2026-05",
        "Corso Vittorio Emanuele II 64, 33170 Pordenone",
        "comune.pordenone@certgov.fvg.it",
        "Avv. Paola Rossi",
        "dpo@comune.pordenone.it",
        "art. 6, paragrafo 1, lettera a",
        "Per quanto tempo",
        "Meta Platforms Ireland Limited",
        "fuori dall'Unione europea",
        "I MIEI DATI",
        "CANCELLA I MIEI DATI",
        "Garante per la protezione dei dati personali",
        "Gli altri iscritti non vedono il tuo numero",
    ]:
        assert fact in html, fact
    assert "di Comune di" not in html


@pytest.mark.django_db
@override_settings(**REAL)
def test_the_notice_is_in_english_by_parameter_or_by_the_browsers_language(client):
    by_parameter = client.get("/privacy/?lang=en")
    by_browser = client.get("/privacy/", HTTP_ACCEPT_LANGUAGE="en-GB,en;q=0.9")
    italian = client.get("/privacy/?lang=it", HTTP_ACCEPT_LANGUAGE="en")

    for page in (by_parameter, by_browser):
        assert page["Content-Language"] == "en"
        html = page.content.decode()
        assert "Privacy notice – WhatsApp channel of Comune di Pordenone" in html
        assert "Version 2026-05" in html and "Garante per la protezione" in html
    assert italian["Content-Language"] == "it"


def test_the_chat_links_to_the_served_notice_by_default(settings):
    assert settings.PRIVACY_NOTICE_URL == f"{settings.SITE_URL}/privacy/"
    with override_settings(**REAL):
        welcome = texts.in_language("it", texts.welcome)
        assert "https://banditore.comune.pordenone.it/privacy/" in welcome
        assert "versione 2026-05" in welcome
        assert "Gli altri iscritti non vedono il tuo numero" in welcome


@pytest.mark.django_db
def test_the_ledger_records_the_version_the_settings_hold(chat):
    phone = "393471239001"
    with override_settings(PRIVACY_NOTICE_VERSION="2027-03"):
        chat(phone, text_item(phone, "Iscrivimi"))
        chat(phone, tap(phone, "button", ACCEPT))

    consent = ConsentEvent.objects.get(kind="consent")
    assert consent.privacy_version == "2027-03"


def test_start_up_with_debug_off_names_every_setting_still_at_its_example():
    with override_settings(DEBUG=False, PRIVACY_NOTICE_URL="https://www.comune.example.it/p"):
        messages = [problem.msg for problem in check_privacy_settings()]
        with pytest.raises(SystemCheckError, match="COUNCIL_NAME"):
            call_command("check")

    named = {message.split()[0] for message in messages}
    assert named == {
        "COUNCIL_NAME", "COUNCIL_PHONE", "COUNCIL_EMAIL", "COUNCIL_PEC", "COUNCIL_ADDRESS",
        "COUNCIL_WEBSITE", "PRIVACY_DPO_EMAIL", "PRIVACY_NOTICE_URL",
    }  # fmt: skip
    assert "'Comune di Esempio'" in " ".join(messages)


def test_the_councils_own_settings_pass_and_debug_is_not_checked():
    with override_settings(DEBUG=False, **REAL):
        assert check_privacy_settings() == []
    with override_settings(DEBUG=False, **(REAL | {"PRIVACY_DPO_EMAIL": ""})):
        assert [p.msg for p in check_privacy_settings()] == [
            "PRIVACY_DPO_EMAIL is empty: the privacy notice needs it"
        ]
    with override_settings(DEBUG=True):
        assert check_privacy_settings() == []


@pytest.mark.parametrize(
    ("name", "setting", "of", "from_", "to"),
    [
        ("Comune di Pordenone", "auto", "del Comune di Pordenone", "dal Comune di Pordenone",
         "al Comune di Pordenone"),
        ("Città di Torino", "auto", "della Città di Torino", "dalla Città di Torino",
         "alla Città di Torino"),
        ("Roma Capitale", "auto", "di Roma Capitale", "da Roma Capitale", "a Roma Capitale"),
        ("Unione dei Comuni del Friuli", "auto", "dell'Unione dei Comuni del Friuli",
         "dall'Unione dei Comuni del Friuli", "all'Unione dei Comuni del Friuli"),
        ("Municipalità di Mestre", "la", "della Municipalità di Mestre",
         "dalla Municipalità di Mestre", "alla Municipalità di Mestre"),
        ("Comune di Esempio", "none", "di Comune di Esempio", "da Comune di Esempio",
         "a Comune di Esempio"),
        ("Spilimbergo", "auto", "di Spilimbergo", "da Spilimbergo", "a Spilimbergo"),
        ("Stato Libero", "lo", "dello Stato Libero", "dallo Stato Libero", "allo Stato Libero"),
    ],
)  # fmt: skip
def test_the_councils_name_takes_the_right_articulated_preposition(name, setting, of, from_, to):
    phrases = council_phrases(name, setting)
    assert (phrases["of_council"], phrases["from_council"], phrases["to_council"]) == (
        of, from_, to
    )  # fmt: skip


def test_an_article_written_with_a_typographic_apostrophe_is_understood():
    assert article_of("Unione Montana", "l’") == "l'"


TEXTS = [texts.welcome, texts.left, texts.help_text, texts.one_way, texts.row_all_description]


@pytest.mark.parametrize("name", ["Comune di Pordenone", "Città di Torino", "Roma Capitale"])
def test_no_text_says_di_comune_in_either_language(name):
    with override_settings(COUNCIL_NAME=name, COUNCIL_NAME_ARTICLE="auto"):
        for build in TEXTS:
            italian = texts.in_language("it", build)
            english = texts.in_language("en", build)
            for bad in ("di Comune", "da Comune", "di Città", "da Città", "a Comune"):
                assert bad not in italian, (build.__name__, italian)
            assert name in italian and name in english.replace("the ", "")
