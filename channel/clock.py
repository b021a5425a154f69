"""The one clock for decisions that depend on the time of day (quiet hours, the month's budget).

`now()` is Django's aware `timezone.now()` unless a test has set the clock with `frozen(at)`:
tests move time through this function, never by sleeping or by patching datetime globally.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from django.utils import timezone

_frozen: datetime | None = None


def now() -> datetime:
    return _frozen or timezone.now()


@contextmanager
def frozen(at: datetime) -> Iterator[None]:
    """Within the block, `now()` answers `at` (an aware datetime), in every thread."""
    global _frozen
    if timezone.is_naive(at):
        raise ValueError("the clock needs an aware datetime")
    before, _frozen = _frozen, at
    try:
        yield
    finally:
        _frozen = before
