from __future__ import annotations

from django.core.management.base import BaseCommand

from subscribers.delivery.counters import active_count_recount, post_counts_recount


class Command(BaseCommand):
    help = (
        "Recount posts' delivery counters (the progress panel's and the dashboard's numbers) "
        "from their deliveries, and without post ids the active subscribers too. Safe while "
        "sending: changes made meanwhile are kept. Only needed if someone changed the "
        "subscribers_postcount or subscribers_activecount table by hand."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("post_ids", nargs="*", type=int, help="post ids (default: all)")

    def handle(self, *args, **options) -> None:
        counted = post_counts_recount(options["post_ids"] or None)
        self.stdout.write(f"Recounted {counted:,} deliveries.")
        if not options["post_ids"]:
            self.stdout.write(f"Recounted {active_count_recount():,} active subscribers.")
