"""Test settings: the real settings module, plus eager Celery and fast password hashing.

Run against PostgreSQL and Redis by setting DATABASE_URL and REDIS_URL (as .ci/run does);
without them the tests use SQLite and the embedded Redis, like the one-command run.
"""

import os
from pathlib import Path

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key")
# Without DATABASE_URL/REDIS_URL the suite runs on SQLite and the embedded Redis, like a demo box.
os.environ.setdefault("BANDITORE_EMBEDDED_SERVICES", "1")
os.environ.setdefault(
    "BANDITORE_VAR_DIR", str(Path(__file__).resolve().parent.parent / "var" / "tests")
)

from deploy.settings import *  # noqa: E402, F403

CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Never Meta: a test that sends without the fake_graph fixture fails fast on a closed port.
WHATSAPP_GRAPH_URL = os.environ.get("WHATSAPP_GRAPH_URL", "http://127.0.0.1:9")
WHATSAPP_APP_SECRET = "test-app-secret"
WHATSAPP_VERIFY_TOKEN = "test-verify-token"
WHATSAPP_ACCESS_TOKEN = "test-access-token"
WHATSAPP_PHONE_NUMBER_ID = "100000000000001"
LANGUAGE_CODE = "it"
# Whitenoise looks for the collected files at start-up; tests serve none, but the folder exists.
Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)  # noqa: F405
# A development box: the chat simulator is on (tests that check it off say so).
BANDITORE_SIMULATOR = True
# Drains run inline in the webhook request here (eager Celery): no lingering in the request.
BANDITORE_WEBHOOK_DRAIN_LINGER_SECONDS = 0.0
BANDITORE_WEBHOOK_DRAIN_GATHER_SECONDS = 0.0

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, not Django's shared-cache in-memory database: that one locks whole tables, so the
    # live server, worker threads and concurrency tests fail with "database table is locked".
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}  # noqa: F405
