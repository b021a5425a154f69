"""CPU cost of the webhook intake path, in process (Django test client, full middleware).

    DATABASE_URL=postgres://… REDIS_URL=redis://… .venv/bin/python bench/webhook_intake.py [N]

Prints ms of CPU per request for /healthz (the floor: middleware + test client) and for a
signed one-status webhook POST (verify, INSERT the raw body, Redis wake-up flag). Processing
runs later in Celery and is not counted here. Rows it creates are deleted at the end.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploy.settings")
os.environ.setdefault("SECRET_KEY", "bench")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")
os.environ.setdefault("LOG_LEVEL", "ERROR")
os.environ.setdefault("WHATSAPP_APP_SECRET", "bench-secret")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.test import Client  # noqa: E402

from channel.models import InboundEvent  # noqa: E402
from channel.services import WAKE_KEY, _redis  # noqa: E402
from channel.signatures import HEADER, sign  # noqa: E402

STATUS = {
    "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA",
    "status": "delivered",
    "timestamp": "1750030073",
    "recipient_id": "16505551234",
    "biz_opaque_callback_data": "bench",
    "pricing": {
        "billable": True,
        "pricing_model": "PMP",
        "type": "regular",
        "category": "marketing",
    },
}
BODY = json.dumps(
    {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "1", "phone_number_id": "1"},
                            "statuses": [STATUS],
                        },
                    }
                ],
            }
        ],
    }
).encode()


def cpu_per_request(call, n: int) -> float:
    for _ in range(min(200, n)):
        call()
    start = time.process_time()
    for _ in range(n):
        call()
    return (time.process_time() - start) * 1000 / n


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    client = Client()
    headers = {HEADER: sign(BODY, settings.WHATSAPP_APP_SECRET)}
    first_id = (InboundEvent.objects.order_by("-id").values_list("id", flat=True).first()) or 0
    # The drain task is not running here: keep the flag set, as under load, so no POST publishes.
    _redis().set(WAKE_KEY, 1, ex=3600)

    def webhook() -> None:
        response = client.post(
            "/whatsapp/webhook/", data=BODY, content_type="application/json", headers=headers
        )
        assert response.status_code == 200, response.status_code

    floor = cpu_per_request(lambda: client.get("/healthz"), n)
    intake = cpu_per_request(webhook, n)
    InboundEvent.objects.filter(id__gt=first_id).delete()
    _redis().delete(WAKE_KEY)
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    print(f"{n} requests each, body {len(BODY)} bytes, database {engine}")
    print(f"/healthz            {floor:.3f} ms CPU per request")
    extra = intake - floor
    print(f"/whatsapp/webhook/  {intake:.3f} ms CPU per POST (+{extra:.3f} ms over /healthz)")


if __name__ == "__main__":
    main()
