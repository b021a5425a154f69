"""The bare webhook of docs perf-limits §6: one Django view with Django's default middleware,
under gunicorn. It checks X-Hub-Signature-256, parses Meta's statuses and RPUSHes
"wamid|status" to a Redis list for `bench.bare`'s processor. `bench/send.py` runs it."""

from __future__ import annotations

import hashlib
import hmac
import json
import os

import django
import redis
from django.conf import settings
from django.http import HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

SECRET = os.environ.get("WHATSAPP_APP_SECRET", "bench-secret").encode()
queue = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))


@csrf_exempt
def webhook(request):
    body = request.body
    expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers.get("X-Hub-Signature-256", "")):
        return HttpResponse(status=403)
    items = [
        f"{status['id']}|{status['status']}"
        for entry in json.loads(body)["entry"]
        for change in entry["changes"]
        for status in change["value"].get("statuses", [])
    ]
    if items:
        queue.rpush("bare:statuses", *items)
    return HttpResponse()


urlpatterns = [path("whatsapp/webhook/", webhook)]

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[  # Django's default list (startproject)
        "django.middleware.security.SecurityMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    ],
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.messages",
    ],
    DATABASES={},
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
