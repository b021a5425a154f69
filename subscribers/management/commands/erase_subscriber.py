from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from subscribers.erasure import staff_erase
from subscribers.numbers import normalise_number


class Command(BaseCommand):
    help = (
        "Erase a person by number, as if they had written CANCELLA I MIEI DATI: number, profile "
        "name, messages and topics go from every table and log; the ledger stays without the "
        "number. Irreversible; recorded in the audit log."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("number", help="the WhatsApp number, e.g. +39 347 1234567")
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    def handle(self, *args, **options) -> None:
        number = options["number"]
        try:
            wa_id = normalise_number(number)
        except ValueError:
            raise CommandError(f"{number!r} is not a phone number") from None
        if not options["yes"]:
            answer = input(f"Erase everything about +{wa_id}? This cannot be undone. [y/N] ")
            if answer.strip().lower() not in ("y", "yes", "s", "si", "sì"):
                raise CommandError("Nothing erased.")
        with transaction.atomic():
            erased = staff_erase(number=number, via="command")
        if erased is None:
            self.stdout.write(
                f"No subscriber has the number +{wa_id}: only its messages in the logs (if any) "
                "were erased."
            )
        else:
            self.stdout.write(f"Erased subscriber #{erased.pk}.")
