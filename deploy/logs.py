"""Log lines that never carry a phone number or an access token in full.

`RedactingFilter` sits on the console handler (LOGGING in deploy/settings.py), so it sees every
record of every library (Django, Celery, httpx, ours) after %-formatting, tracebacks included:
a number or token that reaches a log line by any path (an exception's repr, a URL, a payload)
is masked there, not only where our own code remembers to mask it.
"""

from __future__ import annotations

import json
import logging
import re

# WhatsApp ids are E.164 numbers without the plus: 11 to 15 digits with the country code
# (https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids).
# Ten digits are left alone: that is a Unix timestamp, which Meta's webhooks are full of.
_PHONE = re.compile(r"(?<![\w.+])(\+?\d{2})\d{7,11}(\d{2})(?!\w)")
# Meta's access tokens start with EAA; any bearer credential, and access_token= in a URL.
_TOKENS = [
    (re.compile(r"\bEAA[A-Za-z0-9]{16,}"), "EAA•••"),
    (re.compile(r"(?i)\b(bearer\s+)[^\s'\",]+"), r"\1•••"),
    (re.compile(r"(?i)\b(access_token=)[^\s&'\"]+"), r"\1•••"),
]


def redact(text: str) -> str:
    """+393331234567 → +39•••67; tokens → •••."""
    text = _PHONE.sub(lambda match: f"{match[1]}•••{match[2]}", text)
    for pattern, replacement in _TOKENS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info:
            # The traceback's text, redacted, stands in for the exception itself.
            record.exc_text = redact(self._formatter.formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def logging_config(log_format: str, level: str) -> dict:
    """Django's LOGGING: one console handler, text or JSON lines, redacted."""
    fields = "%(asctime)s %(levelname)s %(name)s %(message)s"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": "deploy.logs.RedactingFilter"}},
        "formatters": {
            "text": {"format": fields},
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "format": fields,
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
                "json_ensure_ascii": False,
            },
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["redact"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        # httpx logs every request at INFO: one line per message sent, ~1,000 lines/s at full rate.
        "loggers": {
            "httpx": {"level": "WARNING"},
            # Django's own default sends error mails to ADMINS with the request's data, before
            # (and without) the redacting filter: its records go to the console like the rest;
            # our alerts mail ADMINS themselves, with nothing personal in them.
            "django": {"handlers": [], "propagate": True},
        },
    }


def start_error_reports(dsn: str) -> None:
    """Send errors to Sentry (SENTRY_DSN) with the Django and Celery integrations; without a DSN
    nothing is loaded. No personal data: request bodies, cookies and users are not sent, and
    what is sent goes through the same redaction as the logs."""
    if not dsn:
        return
    import sentry_sdk  # only where reporting is on

    def redacted(event, hint):
        return json.loads(redact(json.dumps(event, default=str)))

    sentry_sdk.init(dsn=dsn, send_default_pii=False, max_request_body_size="never",
                    before_send=redacted)  # fmt: skip
