"""Typed readers for environment variables that fail loudly on bad values (12-factor)."""

from __future__ import annotations

import os
from datetime import time
from decimal import Decimal, InvalidOperation
from email.utils import parseaddr
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


# Variables that were renamed (to the prefix rule in the README's Settings table). An old name
# left in a council's env file would otherwise be ignored without a word, and its value lost.
RENAMED = {
    "WHATSAPP_WEBHOOK_MAX_BYTES": "BANDITORE_WEBHOOK_MAX_BYTES",
    "WEBHOOK_DRAIN_LINGER_SECONDS": "BANDITORE_WEBHOOK_DRAIN_LINGER_SECONDS",
    "WEBHOOK_ARCHIVE_DAYS": "BANDITORE_WEBHOOK_ARCHIVE_DAYS",
    "WHATSAPP_HTTP_TIMEOUT": "BANDITORE_HTTP_TIMEOUT",
    "WHATSAPP_REPLY_RESERVE": "BANDITORE_REPLY_RESERVE",
    "DELIVERY_SETTLE_SECONDS": "BANDITORE_SETTLE_SECONDS",
    "API_THROTTLE_RATE": "BANDITORE_API_THROTTLE_RATE",
    "API_IDEMPOTENCY_DAYS": "BANDITORE_API_IDEMPOTENCY_DAYS",
    # Prices per category and country are the rate card, edited in the admin with a date.
    "WHATSAPP_PRICE_MARKETING": "the rate card (admin: Tariffe WhatsApp)",
    "WHATSAPP_PRICE_UTILITY": "the rate card (admin: Tariffe WhatsApp)",
}


def refuse_renamed_variables() -> None:
    """Stop, naming the new name, if the environment still sets a variable by its old name."""
    stale = [f"{old} was renamed to {new}" for old, new in RENAMED.items() if old in os.environ]
    if stale:
        raise ImproperlyConfigured(
            "; ".join(stale) + ". Use the new name in the environment (README, Settings)."
        )


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None else value.strip()


def env_str(name: str, default: str = "") -> str:
    value = _raw(name)
    return default if value is None else value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use 1/0, true/false, yes/no)")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a whole number") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} must be at least {minimum}")
    return number


def env_decimal(name: str, default: str) -> Decimal:
    value = _raw(name) or default
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ImproperlyConfigured(f"{name}={value!r} is not a number") from None
    if number < 0:
        raise ImproperlyConfigured(f"{name}={value!r} must not be negative")
    return number


def env_optional_decimal(name: str) -> Decimal | None:
    """A non-negative number, or None when the variable is unset or empty."""
    return env_decimal(name, "0") if _raw(name) else None


def env_quiet_hours(name: str) -> tuple[time, time] | None:
    """`HH:MM-HH:MM` in the council's time (TIME_ZONE), e.g. 21:00-08:00 across midnight; empty:
    None (no quiet hours)."""
    value = (_raw(name) or "").replace(" ", "")
    if not value:
        return None
    try:
        start, end = (time.fromisoformat(part) for part in value.split("-"))
    except ValueError:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a time range like 21:00-08:00 (start-end, 24-hour clock)"
        ) from None
    if start == end:
        raise ImproperlyConfigured(f"{name}={value!r}: start and end are the same time")
    return start, end


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


def env_phone_numbers(name: str, default: list[str] | None = None) -> list[str]:
    """Comma-separated E.164 numbers (+393331234567) as WhatsApp ids: digits, no plus."""
    numbers = [n.replace(" ", "").lstrip("+") for n in env_list(name, default)]
    for number in numbers:
        if not (number.isdigit() and 7 <= len(number) <= 15 and number[0] != "0"):
            raise ImproperlyConfigured(
                f"{name}: {number!r} is not an E.164 number like +393331234567"
            )
    return numbers


def env_choice(name: str, default: str, choices: set[str]) -> str:
    value = env_str(name, default)
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of {', '.join(sorted(choices))}")
    return value


def database_from_url(url: str, *, sqlite_default: Path) -> dict:
    """Django DATABASES entry for postgres://user:pw@host:port/name or sqlite:///path."""
    if not url:
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": sqlite_default}
    parts = urlsplit(url)
    if parts.scheme in {"postgres", "postgresql", "pgsql"}:
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ImproperlyConfigured(f"DATABASE_URL={url!r} names no database")
        options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        conn_max_age = int(options.pop("conn_max_age", "60"))
        try:
            port = parts.port
        except ValueError:
            raise ImproperlyConfigured(f"DATABASE_URL={url!r} has a bad port") from None
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(port or ""),
            "CONN_MAX_AGE": conn_max_age,
            "OPTIONS": options,
        }
    if parts.scheme == "sqlite":
        # sqlite:///relative.db or sqlite:////absolute/path.db
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": parts.path[1:] or sqlite_default}
    raise ImproperlyConfigured(
        f"DATABASE_URL={url!r}: unsupported scheme {parts.scheme!r} (use postgres:// or sqlite://)"
    )


def check_redis_url(url: str) -> str:
    if urlsplit(url).scheme not in {"redis", "rediss", "unix"}:
        raise ImproperlyConfigured(
            f"REDIS_URL={url!r}: use redis://host:port/db, rediss:// or unix:///path/to.sock"
        )
    return url


def celery_broker_from_redis(url: str) -> str:
    # redis-py spells a socket unix:///path; kombu wants redis+socket:///path.
    if url.startswith("unix://"):
        return "redis+socket://" + url.removeprefix("unix://")
    return url


def env_addresses(name: str) -> list[tuple[str, str]]:
    """Comma-separated "Name <address>" (or bare addresses) as Django's ADMINS pairs."""
    pairs = []
    for item in env_list(name):
        display, address = parseaddr(item)
        if "@" not in address:
            raise ImproperlyConfigured(
                f"{name}: {item!r} is not an e-mail address like Ufficio IT <it@comune.it>"
            )
        pairs.append((display or address, address))
    return pairs


def env_networks(name: str) -> list[IPv4Network | IPv6Network]:
    """Comma-separated addresses or networks (10.0.0.0/8, ::1)."""
    try:
        return [ip_network(item, strict=False) for item in env_list(name)]
    except ValueError as error:
        raise ImproperlyConfigured(f"{name}: {error}") from None
