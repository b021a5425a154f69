"""How people really write to a public service, and what each message means.

One row per phrasing: polite words, greetings, informal Italian, English, typos, caps, emoji,
punctuation. Leaving must never be missed: anything plausibly asking to stop is LEAVE or
MAYBE_LEAVE (answered with one question with buttons), never UNKNOWN.
"""

from __future__ import annotations

import pytest

from subscribers.conversation.intents import (
    Intent,
    consent_answer,
    find_topics,
    is_done,
    named_topics,
    normalise,
    understand,
    within_one_edit,
)
from subscribers.conversation.machine import TopicChoice

TOPICS = [
    TopicChoice("scuola", "Scuola", "Schools"),
    TopicChoice("cantieri", "Cantieri e viabilità", "Roadworks and traffic"),
    TopicChoice("rifiuti", "Raccolta differenziata", "Recycling"),
    TopicChoice("eventi", "Eventi e cultura", "Events and culture"),
    TopicChoice("farmacie", "Farmacie di turno", "Pharmacies on duty"),
    TopicChoice("lavori", "Lavori pubblici (cantieri stradali)", "Public works"),
    TopicChoice("sport", "Eventi sportivi", "Sport events"),
]

L, M, J, U = "leave", "maybe_leave", "join", "unknown"

PHRASINGS = [
    # --- leaving, Italian ---
    ("cancellami", L), ("Cancellami!", L), ("CANCELLAMI", L), ("cancellami grazie", L),
    ("Cancellami per favore", L), ("cancellatemi", L), ("Cancellatemi grazie mille", L),
    ("Buongiorno, cancellatemi per cortesia", L), ("cancella", L), ("cancellare", L),
    ("mi cancello", L), ("cancellazione", L), ("Cancellazione iscrizione", L),
    ("vorrei cancellarmi", L), ("Vorrei essere cancellato", L), ("voglio essere cancellata", L),
    ("potete cancellarmi", L), ("disiscrivi", L), ("disiscrivimi", L), ("Disiscrivetemi", L),
    ("disiscrizione", L), ("vorrei disiscrivermi", L), ("toglietemi", L), ("toglimi", L),
    ("toglietemi dalla lista", L), ("rimuovete il mio numero", L), ("rimuovimi", L),
    ("Rimuovete il mio numero per favore", L), ("eliminatemi", L), ("eliminami dal gruppo", L),
    ("annulla iscrizione", L), ("annullare l'iscrizione", L), ("basta", L), ("BASTA", L),
    ("basta!!!", L), ("Bastaaaa", L), ("BASTA MESSAGGI", L), ("basta notizie grazie", L),
    ("stop", L), ("STOP", L), ("Stop.", L), ("stop grazie", L), ("stop messaggi", L),
    ("stoooop", L), ("🛑", L), ("⛔️⛔️", L), ("non voglio più", L),
    ("non voglio più messaggi", L), ("Non voglio piu ricevere messaggi", L),
    ("non voglio più ricevere notizie", L), ("non mandatemi più niente", L),
    ("non mandate più messaggi", L), ("non scrivetemi più", L), ("Non mi interessa", L),
    ("non mi interessa più, grazie", L), ("non voglio più essere iscritto", L),
    ("non voglio piu essere iscritta", L), ("voglio uscire", L), ("voglio uscire dal gruppo", L),
    ("esci", L), ("disattiva", L), ("disattivate le notifiche", L), ("smettetela", L),
    ("smettete di scrivermi", L), ("cancellami da tutto", L),
    ("cancellami da tutti gli argomenti", L),
    ("Salve, vorrei essere rimossa dalla lista. Grazie", L), ("cancellami subito", L),
    ("Cancellatemi, grazie. Saluti", L), ("/cancellami", L), ("cancèllami", L),
    ("niente più messaggi", L), ("Buonasera. Cancellatemi. Grazie", L),
    ("Non voglio più, cancellatemi", L), ("basta basta basta", L),
    ("Potete cancellarmi?", L), ("Non desidero più ricevere messaggi", L),
    ("Non sono più interessato", L), ("Vi prego di cancellarmi", L), ("disdici", L),
    ("vorrei disdire l'iscrizione", L), ("non mi serve più", L), ("lasciatemi in pace", L),
    ("Grazie ma non mi interessa più", L), ("Cancellami!!! Non ne posso più", L),
    # --- typos ---
    ("cancelami", L), ("cancellmi", L), ("cacellami", L), ("cancellatmi", L),
    ("disicrivimi", L), ("disiscirvimi", L), ("toglietmi", L), ("bsata", L),
    ("unsubscibe", L), ("unsuscribe", L), ("unsubscrbe", L), ("stopp", L),
    # --- leaving, English ---
    ("unsubscribe", L), ("Unsubscribe please", L), ("UNSUBSCRIBE", L), ("unsub", L),
    ("remove me", L), ("Please remove me from this list", L), ("remove my number", L),
    ("stop sending", L), ("Stop sending me messages", L), ("stop messaging me", L),
    ("opt out", L), ("opt me out", L), ("take me off the list", L), ("delete me", L),
    ("no more messages", L), ("no more", L), ("I don't want these messages", L),
    ("I don't want to receive messages anymore", L), ("don't send me anything", L),
    ("please stop", L), ("STOP!!", L), ("enough", L), ("leave", L), ("quit", L),
    ("cancel", L), ("cancel my subscription", L), ("can you remove me?", L),
    ("I'm not interested", L), ("not interested", L), ("Please stop texting me", L),
    ("leave me alone", L), ("STOP ALL", L), ("I want to unsubscribe", L),
    ("I do not want to be subscribed anymore", L), ("stop it thanks", L),
    # --- uncertain: asked back with buttons, never ignored ---
    ("come faccio a cancellarmi?", M), ("posso cancellarmi?", M), ("come mi disiscrivo", M),
    ("non riesco a cancellarmi", M), ("how do I unsubscribe?", M), ("I can't unsubscribe", M),
    ("no", M), ("No grazie", M), ("no thanks", M), ("non voglio", M), ("I don't want", M),
    ("perché mi mandate questi messaggi?", M), ("troppi messaggi", M),
    ("too many messages", M), ("non mi sono mai iscritto", M), ("cancellami boh", M),
    ("stop xyz", M), ("basta con questa roba", M), ("il cancello della scuola è rotto", U),
    ("NO STOP", L), ("no basta!", L), ("No no basta", L), ("no cancellatemi", L),
    ("No disiscrivimi", L), ("nn voglio più", L), ("nn voglio più i vostri messaggi", M),
    # --- not leaving ---
    ("nn cancellatemi", U),
    ("non voglio che mi cancellate", U), ("Non cancellatemi", U), ("non cancellatemi!", U),
    ("don't unsubscribe me", U), ("please do not remove me", U),
    ("non voglio essere cancellato", U), ("non smettete di mandarmi le notizie", U),
    ("Non voglio disiscrivermi", U), ("non ho ricevuto le notizie", U),
    ("non ho ricevuto il messaggio di ieri", U), ("Buongiorno", U), ("ciao", U),
    ("A che ora apre l'anagrafe?", U), ("grazie", U), ("Hello", U), ("👍", U),
    # --- joining ---
    ("iscrivimi", J), ("Iscrivimi per favore", J), ("ISCRIVIMI!!", J), ("iscriviti", J),
    ("Iscrivetemi", J), ("vorrei iscrivermi", J), ("Vorrei iscrivermi, grazie", J),
    ("iscrizione", J), ("Iscrizione", J), ("mi iscrivo", J), ("voglio iscrivermi", J),
    ("come mi iscrivo?", J), ("Buongiorno, vorrei iscrivermi al canale", J),
    ("voglio ricevere le notizie", J), ("vorrei ricevere gli aggiornamenti", J),
    ("mandatemi le notizie", J), ("iscrivi", J), ("/iscrivimi", J), ("iscirvimi", J),
    ("iscrivimii", J), ("non riesco a iscrivermi", J), ("subscribe", J), ("Subscribe me", J),
    ("sign me up", J), ("sign up", J), ("join", J), ("I want to join", J), ("start", J),
    ("please subscribe me", J), ("I'd like to receive the news", J), ("abbonami", J),
    ("registrami", J), ("voglio le notizie", J), ("vorrei essere aggiunto", J), ("add me", J),
    ("Info iscrizione", J),
    # --- commands ---
    ("argomenti", "topics"), ("Argomenti per favore", "topics"), ("menu", "topics"),
    ("aiuto", "help"), ("help", "help"), ("i miei dati", "my_data"),
    ("I miei dati per favore", "my_data"), ("my data", "my_data"),
    ("cancella i miei dati", "erase"), ("Cancellate i miei dati", "erase"),
    ("delete my data please", "erase"), ("english", "english"), ("italiano", "italian"),
    # --- one topic ---
    ("cancellami scuola", "topic:scuola"), ("Cancellami dalla scuola", "topic:scuola"),
    ("cancellami dalla raccolta differenziata", "topic:rifiuti"),
    ("stop farmacie", "topic:farmacie"), ("Stop farmacie di turno", "topic:farmacie"),
    ("basta raccolta differenziata", "topic:rifiuti"), ("stop recycling", "topic:rifiuti"),
    ("unsubscribe from schools", "topic:scuola"), ("togli viabilità", "topic:cantieri"),
    ("cancellami da Lavori pubblici (cantieri stradali)", "topic:lavori"),
    ("stop cantieri e viabilità", "topic:cantieri"),
    ("cancellami dalle farmacie", "topic:farmacie"),
    ("non voglio più ricevere notizie sulla scuola", "topic:scuola"),
    ("stop cultura", "topic:eventi"), ("cancellami farmacia", "topic:farmacie"),
    ("stop eventi", "which:eventi,sport"), ("cancellami cantieri", "which:cantieri,lavori"),
]  # fmt: skip


def _expected(understood) -> str:
    if understood.intent == Intent.LEAVE_TOPIC:
        if len(understood.topics) == 1:
            return f"topic:{understood.topics[0]}"
        return "which:" + ",".join(sorted(understood.topics))
    return str(understood.intent)


def test_there_are_at_least_150_phrasings_in_both_languages():
    assert len(PHRASINGS) >= 150
    assert len({said for said, _ in PHRASINGS}) == len(PHRASINGS)


@pytest.mark.parametrize(("said", "means"), PHRASINGS)
def test_each_phrasing_means_what_people_mean(said, means):
    assert _expected(understand(said, TOPICS)) == means


@pytest.mark.parametrize(
    ("said", "language"),
    [
        ("iscrivimi", "it"),
        ("subscribe me", "en"),
        ("sign me up", "en"),
        ("vorrei iscrivermi", "it"),
    ],
)
def test_join_words_tell_the_language(said, language):
    assert understand(said).language == language


def test_normalise_strips_case_accents_punctuation_emoji_and_repeated_letters():
    assert normalise("Viabilità, È OK?!") == "viabilita e ok"
    assert normalise("  BASTAAAA 😡😡 ") == "basta"
    assert normalise("dall'elenco") == "dall elenco"


@pytest.mark.parametrize(
    ("a", "b", "close"),
    [("cancellami", "cancelami", True), ("iscrivimi", "iscirvimi", True),
     ("cancellami", "cancellatemi", False), ("basta", "bsata", True), ("stop", "stap", True)],
)  # fmt: skip
def test_one_edit_includes_swaps(a, b, close):
    assert within_one_edit(a, b) is close


def test_short_words_are_not_guessed_from_typos():
    assert understand("stap").intent == Intent.UNKNOWN  # four letters: no typo allowed


def test_extra_words_come_from_the_setting(settings):
    settings.BANDITORE_KEYWORDS_EXTRA = {"leave": ["lasciatemi in pace"], "join": ["ci sto"]}
    assert understand("Lasciatemi in pace!").intent == Intent.LEAVE
    assert understand("ci sto").intent == Intent.JOIN


@pytest.mark.parametrize(
    ("said", "answer"),
    [("Accetto", True), ("sì", True), ("Si grazie", True), ("ok", True), ("OK 👍", True),
     ("yes", True), ("va bene", True), ("d'accordo", True), ("no", False), ("no grazie", False),
     ("Non accetto", False), ("no thanks", False), ("che cosa conservate?", None),
     ("boh", None)],
)  # fmt: skip
def test_typed_consent(said, answer):
    assert consent_answer(said) is answer


@pytest.mark.parametrize(
    ("said", "done"),
    [("fatto", True), ("Fatto!", True), ("ho finito", True), ("done", True), ("ok", True),
     ("basta così", True), ("basta", False), ("scuola", False)],
)  # fmt: skip
def test_typed_done(said, done):
    assert is_done(said) is done


def test_typed_topic_names_while_choosing():
    assert named_topics("Scuola", TOPICS) == ("scuola",)
    assert named_topics("scuola e farmacie", TOPICS) == ("scuola", "farmacie")
    assert named_topics("Eventi e cultura", TOPICS) == ("eventi",)
    assert named_topics("che cos'è?", TOPICS) == ()
    assert find_topics("eventi", TOPICS) == ("eventi", "sport")
