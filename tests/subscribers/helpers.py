"""Shared set-up for the subscribers app's tests in more than one folder."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.db import connection


@contextmanager
def concurrently(work: Callable[[int], object], n: int) -> Iterator[list[Exception]]:
    """work(0) … work(n - 1), each on a thread and database connection of its own, let go
    together; yields the list their exceptions land in, and joins them when the block ends."""
    start = threading.Barrier(n)
    errors: list[Exception] = []

    def run(i: int) -> None:
        try:
            start.wait()
            work(i)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    try:
        yield errors
    finally:
        for thread in threads:
            thread.join(60)


def run_concurrently(work: Callable[[int], object], n: int) -> list[Exception]:
    """work(0) … work(n - 1) at once, as `concurrently`; returns what they raised."""
    with concurrently(work, n) as errors:
        pass
    return errors
