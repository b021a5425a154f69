"""Shared set-up for the Graph API client's tests."""

from __future__ import annotations

from channel.graph import client


def close_clients() -> None:
    """Drop the process's client and its connections: the next send opens fresh ones, none
    left half-used by an earlier test."""
    with client._lock:
        stale = list(client._clients.values())
        client._clients.clear()
    for old in stale:
        old.close()
