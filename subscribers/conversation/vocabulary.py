"""The words the understanding rules (subscribers.conversation.intents) look for, in Italian
and English, written without accents as `intents.normalise` leaves them. Add a word here, and
a phrasing with it to tests/subscribers/conversation/test_intents.py."""

from __future__ import annotations


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


FILLERS = _words(
    "per favore piacere cortesia cortesemente gentilmente grazie mille tante molte infinite "
    "buongiorno buonasera buonanotte buon giorno sera salve ciao gentili gentile egregi spett "
    "prego scusate scusa scusi allora ehm beh subito ora adesso immediatamente oggi grz "
    "cordiali saluti distinti please pls plz thanks thank thx ty hello hi hey dear good "
    "morning evening afternoon sir madam regards kind best now asap immediately right away "
    "sorry just ok okay pure anche quindi comunque davvero veramente proprio definitivamente "
    "sempre forever pace alone"
)
FUNCTION_WORDS = _words(
    "il lo la le gli i l un una uno mio mia miei mie me mi ti te ci vi voi noi io tu "
    "a ad al allo alla ai agli alle all da dal dallo dalla dai dagli dalle dall di d del dello "
    "della dei degli delle dell in nel nello nella nei negli nelle su sul sullo sulla sui sugli "
    "sulle per con e ed o questo questa questi queste quello quella quelli quelle "
    "the a an from of to off on in for and or my me i this that these those your you "
    "s t m it them please ma pero but ne"
)
GENERIC = _words(
    "messaggi messaggio notizie notizia notifiche notifica comunicazioni comunicazione "
    "aggiornamenti canale gruppo lista elenco servizio whatsapp tutto tutti tutte numero "
    "contatto newsletter spam news message messages notifications notification updates "
    "channel group list service everything all number texts chat qui here questi argomenti "
    "temi topics anything nulla"
)
NEGATIONS = _words("non nn not dont don doesn never mai niente nessun nessuna")
MORE = _words("piu anymore longer more again ancora")  # "non ... più", "no more"
WANT = _words("voglio vogliamo vorrei volevo desidero want wanna would like wish need serve")
# Words that say the person cannot, or asks how to: "non riesco a cancellarmi".
UNABLE = _words(
    "riesco riusciamo posso possiamo so sappiamo capisco trovo funziona come how can cannot "
    "could able know find where dove"
)
QUESTION = _words("come posso possiamo perche cosa dove how why what where")
# Auxiliaries of past tenses: "non ho ricevuto" is a complaint, not a request to stop.
AUXILIARIES = _words("ho hai ha abbiamo avete hanno have has had did didn haven hasn")
HELPERS = _words(
    "essere stato stata sono sei be being been che fare far farmi get let do potete puoi "
    "potreste potrei puo"
)
# Asking why, or saying it is too much, next to sending: a complaint, plausibly a wish to stop.
COMPLAINT = _words("perche why troppi troppe troppo too many much")
LEAVE_STEMS = (
    "cancell",
    "disiscri",
    "rimuov",
    "rimoz",
    "togli",
    "elimin",
    "annull",
    "disattiv",
    "smett",
    "disabilit",
    "revoc",
    "unsub",
    "remov",
    "delet",
    "unfollow",
    "unregist",
    "deregist",
    "optout",
    "uscir",
    "stopp",
    "rimoss",
    "tolt",
    "disdi",
    "disdett",
)
LEAVE_WORDS = _words("basta stop esci esco enough quit leave cancel halt lasciatemi lasciami")
NOT_LEAVE = _words("cancello cancelli cancelletto cancelleria")  # "il cancello della scuola"
ARTICLES = _words("il lo i gli un del dello dei degli al allo ai agli dal dallo dai dagli")
LEAVE_FORMS = _words(
    "cancellami cancellatemi cancellare cancellarmi cancellazione disiscrivimi disiscrivetemi "
    "disiscrivere disiscrivermi disiscrizione rimuovimi rimuovetemi rimuovere toglimi "
    "toglietemi togliere eliminami eliminatemi eliminare annullare disattiva disattivare "
    "smettete smettetela unsubscribe remove delete"
)
JOIN_STEMS = (
    "iscri",
    "abbon",
    "registr",
    "aderi",
    "adesion",
    "subscri",
    "signup",
    "enrol",
    "aggiung",
    "aggiunt",
)
JOIN_WORDS = _words("join start signup sign attiva attivami attivate optin add")
JOIN_FORMS = _words(
    "iscrivimi iscrivetemi iscriviti iscrivermi iscrizione iscriversi abbonami abbonarmi "
    "registrami subscribe"
)
# Sending and receiving: negated they mean stop, wanted they mean join.
SEND_STEMS = (
    "mand",
    "invi",
    "scriv",
    "ricev",
    "send",
    "text",
    "messag",
    "contatt",
    "disturb",
    "interess",
    "receiv",
    "spam",
    "interest",
)
# Whole messages choosing the weekly digest or everything at once (also once fillers are gone).
DIGEST_WEEKLY_PHRASES = (
    "riepilogo|riepiloghi|riepilogo settimanale|un riepilogo a settimana|riepilogo a settimana|"
    "riepilogo settimana|riepilogo della settimana|ogni settimana|una volta a settimana|"
    "settimanale|digest|weekly|weekly digest|digest settimanale|once a week|once week|"
    "volta settimana|weekly summary|summary"
)
DIGEST_IMMEDIATE_PHRASES = (
    "tutto subito|subito|tutto e subito|tutte subito|notizie subito|ogni notizia subito|"
    "everything now|everything at once|all at once|at once|immediately|right away|"
    "no riepilogo|niente riepilogo|no digest|no summary"
)
NEWS = _words("notizie notizia news aggiornamenti avvisi updates messaggi")
# fmt: on


YES = _words(
    "si ok okay accetto accetta accept accepted yes y yep yeah sure certo certamente "
    "daccordo accordo agree acconsento confermo conferma va bene vabbene procedi"
)
NO = _words("no non accetto rifiuto decline nope not refuse dont don t grazie no thanks")
DONE = _words(
    "fatto fatta finito finita fine done finished ok okay conferma confermo confirm "
    "ho basta cosi tutto qui that s all avanti next go vai"
)
# fmt: on
