"""Every text the service sends to citizens, in one place.

Italian is the source language (msgids); English lives in subscribers/locale/en. The council's
name, contacts and privacy notice come from settings, so no code changes per comune.
Row titles and buttons must fit WhatsApp's limits
(https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/interactive-list-messages):
the tests render every text in both languages through the payload builders, which enforce them.
English needs no articulated preposition before the council's name, so the English of the texts
that take %(of_council)s, %(from_council)s or %(the_council)s uses %(council)s. msgfmt's format
check rejects a name the msgid lacks, so those msgids are marked no-python-format for xgettext.
"""

from __future__ import annotations

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import override

from subscribers.conversation.grammar import council_phrases


def in_language(language: str, build, *args, **kwargs):
    with override(language or "it"):
        return build(*args, **kwargs)


def council() -> str:
    return settings.COUNCIL_NAME


def privacy_url() -> str:
    return settings.PRIVACY_NOTICE_URL


def contacts() -> str:
    lines = []
    if settings.COUNCIL_PHONE:
        lines.append(_("📞 Telefono: %(phone)s") % {"phone": settings.COUNCIL_PHONE})
    if settings.COUNCIL_EMAIL:
        lines.append(_("✉️ Email: %(email)s") % {"email": settings.COUNCIL_EMAIL})
    if settings.COUNCIL_WEBSITE:
        lines.append(_("🌐 Sito: %(url)s") % {"url": settings.COUNCIL_WEBSITE})
    if settings.COUNCIL_REPORTING_URL:
        lines.append(_("🛠️ Segnalazioni: %(url)s") % {"url": settings.COUNCIL_REPORTING_URL})
    return "\n".join(lines)


def welcome() -> str:
    return _(
        # xgettext:no-python-format
        "Ti diamo il benvenuto nel canale WhatsApp %(of_council)s! 📣\n\n"
        "Riceverai solo le notizie degli argomenti che scegli. Gli altri iscritti non vedono "
        "il tuo numero.\n\n"
        "Informativa privacy (versione %(version)s): %(the_council)s conserva il tuo numero, "
        "il nome del tuo profilo WhatsApp, la lingua, gli argomenti e i messaggi che scrivi, "
        "solo per inviarti queste notizie; i messaggi passano da Meta (WhatsApp). Puoi uscire o "
        "far cancellare tutto quando vuoi. Testo completo: %(url)s\n\nAccetti?"
    ) % (council_phrases() | {"version": settings.PRIVACY_NOTICE_VERSION, "url": privacy_url()})


def accept_button() -> str:
    return _("Accetto")


def refuse_button() -> str:
    return _("Non accetto")


def refused(*, kept: bool = False) -> str:
    if kept:
        return _(
            "Va bene, non ti iscriviamo. Conserviamo il tuo numero solo come registro delle "
            "scelte che avevi fatto; per cancellarlo scrivi CANCELLA I MIEI DATI. "
            "Se cambi idea scrivi ISCRIVIMI."
        )
    return _(
        "Va bene, non ti iscriviamo. Abbiamo cancellato il tuo numero, il tuo nome e i messaggi "
        "di questa conversazione. Se cambi idea scrivi ISCRIVIMI."
    )


def topics_header() -> str:
    return _("I tuoi argomenti")


def topics_body(chosen_names: list[str]) -> str:
    if chosen_names:
        chosen = _("Scelti: %(names)s.") % {"names": ", ".join(chosen_names)}
    else:
        chosen = _("Non hai ancora scelto nessun argomento.")
    hint = _("Tocca un argomento per sceglierlo o toglierlo, poi tocca «Fatto».")
    return f"{hint}\n\n{chosen}"


def topics_button() -> str:
    return _("Scegli argomenti")


def topics_section() -> str:
    """The list's section title: Meta's list messages require one (at most 24 characters)."""
    return _("Argomenti")


def row_all() -> str:
    return _("Tutti gli argomenti")


def row_all_description() -> str:
    return (
        _(
            # xgettext:no-python-format
            "Ricevi tutte le notizie %(of_council)s"
        )
        % council_phrases()
    )


def row_more() -> str:
    return _("Altri argomenti ▸")


def row_first() -> str:
    return _("Torna all'inizio ▸")


def row_page(page: int, pages: int) -> str:
    return _("pagina %(page)s di %(pages)s") % {"page": page, "pages": pages}


def row_done() -> str:
    return _("Fatto")


def row_done_description() -> str:
    return _("Conferma la scelta")


def choose_at_least_one() -> str:
    return _("Scegli almeno un argomento, oppure scrivi CANCELLAMI per non ricevere nulla.")


def confirmed(chosen_names: list[str]) -> str:
    return _(
        "Fatto! ✅ Riceverai le notizie su: %(names)s.\n\n"
        "Per cambiare argomenti scrivi ARGOMENTI. Per non ricevere più nulla scrivi CANCELLAMI."
    ) % {"names": ", ".join(chosen_names)}


def digest_question() -> str:
    return _(
        "Come preferisci ricevere le notizie? «Tutto subito», appena escono, oppure «Ogni "
        "settimana», un solo messaggio con il riepilogo. Gli avvisi urgenti arrivano sempre "
        "subito. Puoi cambiare quando vuoi scrivendo RIEPILOGO o TUTTO SUBITO."
    )


def digest_button(choice: str) -> str:
    return _("Ogni settimana") if choice == "weekly" else _("Tutto subito")


def digest_buttons(choices: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple((tap, digest_button(choice)) for tap, choice in choices.items())


def digest_set(choice: str) -> str:
    if choice == "weekly":
        return _(
            "Fatto! ✅ Riceverai un messaggio a settimana con il riepilogo delle notizie; gli "
            "avvisi urgenti arrivano sempre subito. Per riceverle appena escono scrivi TUTTO "
            "SUBITO."
        )
    return _(
        "Fatto! ✅ Riceverai ogni notizia appena esce. Per un solo messaggio a settimana "
        "scrivi RIEPILOGO."
    )


def digest_choice_name(choice: str) -> str:
    """The person's choice as I MIEI DATI lists it."""
    return _("un riepilogo a settimana") if choice == "weekly" else _("tutto subito")


def already_subscribed() -> str:
    return _("La tua iscrizione è già attiva. Ecco i tuoi argomenti:")


def not_subscribed() -> str:
    return _("Questo numero non è iscritto. Per iscriverti scrivi ISCRIVIMI.")


def left() -> str:
    phrases = council_phrases()
    return (
        _(
            # xgettext:no-python-format
            "Iscrizione annullata: non riceverai più messaggi %(from_council)s.\n\n"
            "Conserviamo il tuo numero solo come registro della tua scelta. "
            "Per cancellare anche quello scrivi CANCELLA I MIEI DATI. Per tornare scrivi ISCRIVIMI."
        )
        % phrases
    )


def topic_left(name: str, remaining: list[str]) -> str:
    if remaining:
        rest = _("Continui a ricevere: %(names)s.") % {"names": ", ".join(remaining)}
    else:
        rest = _("Non hai più argomenti: scrivi ARGOMENTI per sceglierne, CANCELLAMI per uscire.")
    gone = _("Non riceverai più «%(name)s».") % {"name": name}
    return f"{gone} {rest}"


def unknown_topic(word: str, names: list[str]) -> str:
    return _("Non conosco l'argomento «%(word)s». Argomenti: %(names)s.") % {
        "word": word,
        "names": ", ".join(names),
    }


def how_to_join() -> str:
    return _(
        # xgettext:no-python-format
        "Ciao! Per ricevere su WhatsApp le notizie %(of_council)s tocca «Iscrivimi» qui sotto "
        "o scrivi ISCRIVIMI: scegli tu gli argomenti.\n\n"
        "Questo canale invia solo notizie e non può rispondere ai messaggi. "
        "Per domande o segnalazioni:\n%(contacts)s"
    ) % (council_phrases() | {"contacts": contacts()})


def join_button() -> str:
    return _("Iscrivimi")


def consent_reask() -> str:
    return _("Per continuare tocca «Accetto» o «Non accetto» qui sotto (oppure scrivi sì o no).")


def maybe_leave() -> str:
    return (
        _(
            # xgettext:no-python-format
            "Vuoi cancellarti e non ricevere più messaggi %(from_council)s?"
        )
        % council_phrases()
    )


def leave_yes_button() -> str:
    return _("Sì, cancellami")


def leave_no_button() -> str:
    return _("No")


def stay() -> str:
    return _("Va bene, continui a ricevere le notizie. Per cambiare argomenti scrivi ARGOMENTI.")


def which_topic(names: list[str]) -> str:
    return _("Quale argomento vuoi togliere: %(names)s? Scrivi CANCELLAMI seguito dal nome.") % {
        "names": ", ".join(f"«{name}»" for name in names)
    }


def help_text() -> str:
    return _(
        # xgettext:no-python-format
        "Questo è il canale di notizie %(of_council)s. Comandi:\n"
        "• ISCRIVIMI per iscriverti\n"
        "• ARGOMENTI per scegliere gli argomenti\n"
        "• CANCELLAMI per non ricevere più nulla (o CANCELLAMI seguito da un argomento)\n"
        "• RIEPILOGO per un messaggio a settimana, TUTTO SUBITO per ogni notizia appena esce\n"
        "• I MIEI DATI per sapere cosa conserviamo\n"
        "• CANCELLA I MIEI DATI per cancellarli\n"
        "• ENGLISH for English\n\n"
        "Per tutto il resto:\n%(contacts)s"
    ) % (council_phrases() | {"contacts": contacts()})


def language_set() -> str:
    return _("D'ora in poi ti scriviamo in italiano.")


def one_way() -> str:
    return _(
        # xgettext:no-python-format
        "Grazie per il messaggio! Questo canale %(of_council)s invia solo notizie e non può "
        "rispondere. Per domande o segnalazioni:\n%(contacts)s"
    ) % (council_phrases() | {"contacts": contacts()})


def no_data() -> str:
    return _("Non conserviamo nessun dato su questo numero.")


def erased() -> str:
    return _(
        "Fatto: abbiamo cancellato il tuo numero, il tuo nome, i messaggi che hai scritto e le "
        "tue scelte. Restano solo conteggi anonimi. Non riceverai più messaggi."
    )


def erase_question() -> str:
    return _(
        "Vuoi cancellare tutti i tuoi dati? Cancelliamo il tuo numero, il tuo nome, i messaggi "
        "che hai scritto e i tuoi argomenti, e non riceverai più notizie. Non si può annullare."
    )


def erase_yes_button() -> str:
    return _("Sì, cancella tutto")


def erase_no_button() -> str:
    return _("No")


def erase_cancelled() -> str:
    return _("Va bene, non cancelliamo nulla.")


def flow_body() -> str:
    return _("Scegli gli argomenti che ti interessano: puoi selezionarne quanti vuoi.")


def status_name(status: str) -> str:
    return {
        "active": _("iscrizione attiva"),
        "pending": _("in attesa del consenso"),
        "left": _("iscrizione annullata"),
        "unreachable": _("numero non raggiungibile"),
    }.get(status, status)
