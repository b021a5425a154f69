"""GraphClient.send_paced: a batch stopped halfway hands no further request to the transport."""

from __future__ import annotations

import threading
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


def test_each_answer_is_reported_as_it_comes_not_with_the_slowest(fake_graph):
    fake_graph.configure(enforce_window=False, hang_to=["393330000002"], hang_seconds=30)
    client = GraphClient(timeout=5)
    payloads = [
        {"messaging_product": "whatsapp", "to": f"39333000000{n}", "type": "text",
         "text": {"body": "ciao"}}
        for n in range(5)
    ]  # fmt: skip
    answers: dict[int, object] = {}
    four_and_paced = threading.Event()

    def answered(n: int, result) -> None:
        answers[n] = result
        if len(answers) == 5:  # four answers and the end of pacing (-1)
            four_and_paced.set()

    future = client.submit(payloads, answered=answered)
    assert four_and_paced.wait(30)
    assert not future.done()  # the slow one is still out
    assert all(answers[n].ok for n in (0, 1, 3, 4)) and answers[-1] is None
    results = future.result(30)
    assert answers[2] is results[2] and results[2].maybe_sent and not results[2].ok
    client.close()
