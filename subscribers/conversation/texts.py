"""Every text the service sends to citizens, in one place.

Italian is the source language (msgids); English lives in subscribers/locale/en. The council's
name, contacts and privacy notice come from settings, so no code changes per comune.
Row titles and buttons must fit WhatsApp's limits
(https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/interactive-list-messages):
the tests render every text in both languages through the payload builders, which enforce them.
"""

from __future__ import annotations

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import override


def in_language(language: str, build, *args, **kwargs):
    with override(language or "it"):
        return build(*args, **kwargs)


def council() -> str:
    return settings.COUNCIL_NAME


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
        "Benvenuto nel canale WhatsApp di %(council)s! 📣\n\n"
        "Riceverai solo le notizie degli argomenti che scegli. Nessuno vede il tuo numero.\n\n"
        "Informativa privacy (versione %(version)s): conserviamo il tuo numero, la lingua e "
        "gli argomenti scelti solo per inviarti questi messaggi; puoi cancellarti quando vuoi. "
        "Testo completo: %(url)s\n\nAccetti?"
    ) % {
        "council": council(),
        "version": settings.PRIVACY_NOTICE_VERSION,
        "url": settings.PRIVACY_NOTICE_URL,
    }


def accept_button() -> str:
    return _("Accetto")


def refuse_button() -> str:
    return _("Non accetto")


def refused() -> str:
    return _(
        "Va bene, non ti iscriviamo e non conserviamo i tuoi dati. Se cambi idea scrivi ISCRIVIMI."
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


def row_all() -> str:
    return _("Tutti gli argomenti")


def row_all_description() -> str:
    return _("Ricevi tutte le notizie del Comune")


def row_more() -> str:
    return _("Altri argomenti…")


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


def already_subscribed() -> str:
    return _("Sei già iscritto. Ecco i tuoi argomenti:")


def not_subscribed() -> str:
    return _("Non sei iscritto. Per iscriverti scrivi ISCRIVIMI.")


def left() -> str:
    return _(
        "Ti sei cancellato: non riceverai più messaggi da %(council)s. "
        "Per tornare scrivi ISCRIVIMI."
    ) % {"council": council()}


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


def help_text() -> str:
    return _(
        "Questo è il canale di notizie di %(council)s. Comandi:\n"
        "• ISCRIVIMI per iscriverti\n"
        "• ARGOMENTI per scegliere gli argomenti\n"
        "• CANCELLAMI per non ricevere più nulla (o CANCELLAMI seguito da un argomento)\n"
        "• I MIEI DATI per sapere cosa conserviamo\n"
        "• CANCELLA I MIEI DATI per cancellarli\n"
        "• ENGLISH for English\n\n"
        "Per tutto il resto:\n%(contacts)s"
    ) % {"council": council(), "contacts": contacts()}


def language_set() -> str:
    return _("D'ora in poi ti scriviamo in italiano.")


def one_way() -> str:
    return _(
        "Grazie per il messaggio! Questo canale di %(council)s invia solo notizie e non può "
        "rispondere. Per domande o segnalazioni:\n%(contacts)s"
    ) % {"council": council(), "contacts": contacts()}


def my_data(*, status: str, since: str, language: str, topic_names: list[str]) -> str:
    return _(
        "Ecco cosa conserviamo su di te:\n"
        "• numero di telefono (per inviarti i messaggi)\n"
        "• stato: %(status)s, dal %(since)s\n"
        "• lingua: %(language)s\n"
        "• argomenti: %(topics)s\n\n"
        "Per cancellare tutto scrivi CANCELLA I MIEI DATI."
    ) % {
        "status": status,
        "since": since,
        "language": language,
        "topics": ", ".join(topic_names) or "—",
    }


def no_data() -> str:
    return _("Non conserviamo nessun dato su questo numero.")


def erased() -> str:
    return _(
        "Abbiamo cancellato il tuo numero e le tue scelte. Restano solo conteggi anonimi. "
        "Non riceverai più messaggi."
    )


def flow_body() -> str:
    return _("Scegli gli argomenti che ti interessano: puoi selezionarne quanti vuoi.")


def status_name(status: str) -> str:
    return {
        "active": _("iscritto"),
        "pending": _("in attesa del consenso"),
        "left": _("cancellato"),
        "unreachable": _("non raggiungibile"),
    }.get(status, status)
