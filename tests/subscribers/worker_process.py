"""A sender worker in its own OS process, for the crash-safety test (it gets SIGKILLed).

Run as `python -m tests.subscribers.worker_process <post_id>` with DATABASE_URL pointing at the
test database and WHATSAPP_GRAPH_URL at the fake Graph API.
"""

from __future__ import annotations

import os
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from subscribers import sending  # noqa: E402


def main(post_id: int) -> None:
    print("ready", flush=True)
    while (come_back_in := sending.drain_post(post_id, budget_seconds=5)) is not None:
        time.sleep(min(come_back_in, 0.2))


if __name__ == "__main__":
    main(int(sys.argv[1]))
