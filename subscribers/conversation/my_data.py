"""I MIEI DATI: everything stored about the person who asks, in one WhatsApp message.

Their number, the profile name WhatsApp sends with each message, language, topics, the consent
ledger with dates, the messages they wrote (count and dates), the posts sent to them with
delivered/read, and when they left. A text message holds at most 4,096 characters
(https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/text-messages):
long lists show their newest items and a count of the rest.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Count, Max, Min, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from channel.models import InboundMessage
from subscribers.conversation import texts
from subscribers.models import ConsentEvent, Delivery, Subscriber
from topics.models import Post

MAX_CHARS = 4096
SHOWN = 10  # newest ledger events and posts listed one by one


def _day(when) -> str:
    return timezone.localtime(when).strftime("%d/%m/%Y") if when else "—"


def _event_name(kind: str) -> str:
    return {
        "join": _("richiesta di iscrizione"),
        "consent": _("informativa accettata"),
        "refusal": _("informativa non accettata"),
        "topic_added": _("argomento aggiunto"),
        "topic_removed": _("argomento tolto"),
        "leave": _("iscrizione annullata"),
        "erasure": _("cancellazione dei dati"),
        "import": _("iscrizione importata da un elenco"),
        "marketing_stop": _("promozioni sospese"),
        "marketing_resume": _("promozioni riattivate"),
        "digest_weekly": _("scelto il riepilogo settimanale"),
        "digest_immediate": _("scelto tutto subito"),
    }.get(kind, kind)


def _status_of(delivery_status: str) -> str:
    return {
        "read": _("letto"),
        "delivered": _("consegnato"),
        "sent": _("inviato"),
        "failed": _("non consegnato"),
    }.get(delivery_status, _("in invio"))


def my_data_text(subscriber: Subscriber | None, *, identities, profile_name: str) -> str:
    """The whole list, in the active language, within MAX_CHARS."""
    for shown in (SHOWN, 3, 0):
        body = _compose(subscriber, identities, profile_name, shown)
        if len(body) <= MAX_CHARS:
            return body
    return body[: MAX_CHARS - 1] + "…"


def _compose(subscriber, identities, profile_name: str, shown: int) -> str:
    wanted = [identity for identity in identities if identity]
    lines = [_("Ecco tutto ciò che conserviamo su di te:")]
    own = [subscriber.wa_id, subscriber.user_id] if subscriber is not None else []
    number = next((identity for identity in [*own, *wanted] if identity), "")
    if number and number.isdigit():
        lines.append(_("• numero: +%(number)s") % {"number": number})
    elif number:
        lines.append(_("• identificativo WhatsApp: %(number)s") % {"number": number})
    if profile_name:
        lines.append(_("• nome del profilo WhatsApp: %(name)s") % {"name": profile_name})
    if subscriber is not None:
        lines.append(_("• lingua: %(language)s") % {"language": _language_name(subscriber)})
        lines.append(_("• stato: %(status)s") % {"status": texts.status_name(subscriber.status)})
        if subscriber.left_at:
            lines.append(_("• uscita il %(day)s") % {"day": _day(subscriber.left_at)})
        names = [topic.name_en if subscriber.language == "en" else topic.name_it
                 for topic in subscriber.topics.order_by("order", "id")]  # fmt: skip
        lines.append(_("• argomenti: %(names)s") % {"names": ", ".join(names) or "—"})
        choice = subscriber.digest_preference or settings.BANDITORE_DIGEST_DEFAULT
        lines.append(_("• notizie: %(choice)s") % {"choice": texts.digest_choice_name(choice)})
    lines += _messages(wanted)
    if subscriber is not None:
        lines += _ledger(subscriber, shown)
        lines += _posts(subscriber, shown)
    lines.append("")
    lines.append(_("Per cancellare tutto scrivi CANCELLA I MIEI DATI."))
    return "\n".join(lines)


def _language_name(subscriber: Subscriber) -> str:
    return "English" if subscriber.language == "en" else "italiano"


def _messages(identities: list[str]) -> list[str]:
    if not identities:
        return []
    mine = InboundMessage.objects.filter(Q(wa_id__in=identities) | Q(user_id__in=identities))
    summary = mine.aggregate(count=Count("id"), first=Min("sent_at"), last=Max("sent_at"))
    if not summary["count"]:
        return []
    dates = {"first": _day(summary["first"]), "last": _day(summary["last"])}
    text = _("• messaggi che hai scritto: %(count)s, dal %(first)s al %(last)s (con il testo)")
    return [text % (dates | {"count": summary["count"]})]


def _ledger(subscriber: Subscriber, shown: int) -> list[str]:
    events = ConsentEvent.objects.filter(subscriber=subscriber).select_related("topic")
    total = events.count()
    if not total:
        return []
    lines = ["", _("Le tue scelte (%(count)s):") % {"count": total}]
    for event in events.order_by("-at", "-id")[:shown]:
        what = _event_name(event.kind)
        if event.topic is not None:
            topic = event.topic
            what = f"{what}: {topic.name_en if subscriber.language == 'en' else topic.name_it}"
        lines.append(f"• {_day(event.at)} {what}")
    if total > shown:
        lines.append(_("• … e altre %(count)s più vecchie") % {"count": total - shown})
    return lines


def _posts(subscriber: Subscriber, shown: int) -> list[str]:
    deliveries = Delivery.objects.filter(subscriber=subscriber)
    counts = deliveries.aggregate(
        total=Count("id"),
        delivered=Count("id", filter=Q(delivered_at__isnull=False) | Q(read_at__isnull=False)),
        read=Count("id", filter=Q(read_at__isnull=False)),
    )
    if not counts["total"]:
        return []
    lines = [
        "",
        _("Notizie inviate a te: %(total)s (consegnate %(delivered)s, lette %(read)s)") % counts,
    ]
    newest = deliveries.select_related("post").order_by("-queued_at", "-id")[:shown]
    for delivery in newest:
        title = delivery.post.title[:60]
        if delivery.post.kind == Post.Kind.DIGEST:  # its title is the staff's, not theirs
            title = _("riepilogo della settimana")
        lines.append(f"• {_day(delivery.queued_at)} {title}: {_status_of(delivery.status)}")
    return lines
