"""GraphClient.send_paced: a batch stopped halfway hands no further request to the transport."""

from __future__ import annotations

import time

from channel.graph.client import GraphClient
from channel.graph.ratelimit import Grant


def test_a_stopped_batch_sends_nothing_more_and_says_what_was_not_sent(fake_graph):
    fake_graph.configure(enforce_window=False)
    client = GraphClient()
    frontier = [0.0]

    def reserve(count: int) -> Grant:
        """Slots 50 ms apart on one timeline, as the limiter hands them out."""
        now = time.monotonic()
        first = max(now, frontier[0])
        frontier[0] = first + 0.05 * count
        return Grant(count, first - now, first - now + 0.05 * (count - 1))

    def stop() -> bool:
        """Asked before each request: stop once Meta accepted three."""
        return len(fake_graph.outbox()) >= 3

    payloads = [
        {"messaging_product": "whatsapp", "to": f"3933300000{n:02}", "type": "text",
         "text": {"body": "ciao"}}
        for n in range(10)
    ]  # fmt: skip
    results = client.send_paced(payloads, reserve, chunk=2, stop=stop)
    sent = [result for result in results if result.ok]
    # The third is accepted within a millisecond or two; at most one more was on its way.
    assert 3 <= len(sent) <= 4
    assert results[: len(sent)] == sent  # in order: what went, then what did not
    assert all(result.not_sent and not result.maybe_sent for result in results[len(sent) :])
    assert len(fake_graph.outbox()) == len(sent)
