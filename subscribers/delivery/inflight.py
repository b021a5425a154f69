"""A sender's batches in flight, written back as their answers come, never held by the slowest.

Meta answers a send in a fraction of a second, but one request in a hundred may get no answer
until the client's read timeout (BANDITORE_HTTP_TIMEOUT, 15 s): a batch that waited for all of
its answers would hold the sender for that long. So a batch's answers are written back together
once they are all in; once the batch is paced and STRAGGLER_SECONDS have passed, what is
answered goes back with the next write-back, and each request still out goes back when it ends
(a timeout: "maybe sent", that row only; README, "Maybe sent"), riding with another batch's
write-back: a straggler costs no statements of its own. The sender claims the next batch as
soon as one has handed all its requests to the transport, so the rate is never left unused
while a straggler waits.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from channel.graph.errors import Handling
from channel.graph.media import media_forget
from channel.graph.payloads import media_id_in
from subscribers.delivery.settling import Claimed, Outcome, settle

logger = logging.getLogger(__name__)

# How long after its last request left a batch waits for the rest of its answers before writing
# back those it has (well past Meta's usual answer time: the common batch is written back once).
STRAGGLER_SECONDS = 0.5
# Batches being paced at once by one sender: one hands its requests over while the next is
# claimed, so the limiter always has a request waiting for each slot.
PACING = 2
# Requests of earlier batches still waiting for an answer, on top of the batches being paced:
# beyond this the sender claims nothing more until some end (Meta not answering at all must not
# pile up claimed rows; the client's pool has 512 connections).
STRAGGLERS = 256


@dataclass(eq=False)
class Batch:
    """A claimed batch: the outcomes decided without calling Meta, and the requests in flight.
    `answered` is called on the client's event loop; everything else on the sender's thread."""

    claimed: list[Claimed]
    outcomes: list[Outcome]  # not yet written back
    prepared: list[tuple[Claimed, dict, bool]]
    future: Future | None = None
    wait_limit: float = 0.0
    started: float = field(default_factory=time.monotonic)
    paced_at: float | None = None
    unanswered: int = 0
    # Past STRAGGLER_SECONDS: what is answered goes back with the next write-back of any batch.
    straggling: bool = False
    waiting_since: float | None = None  # the oldest answer of a straggling batch not written
    wake: threading.Event | None = None
    _answers: list[tuple[int, object]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answered(self, n: int, result) -> None:
        """Request `n` ended (n = -1: every request was handed over or given up)."""
        with self._lock:
            if n < 0:
                self.paced_at = time.monotonic()
            else:
                self._answers.append((n, result))
                self.unanswered -= 1
                if self.straggling and self.waiting_since is None:
                    self.waiting_since = time.monotonic()
            # Wake the sender only when there is something for it to do: claim the next batch,
            # or write this one back.
            wake = n < 0 or self.complete
        event = self.wake
        if wake and event is not None:
            event.set()

    @property
    def pacing(self) -> bool:
        return self.paced_at is None

    @property
    def complete(self) -> bool:
        return self.paced_at is not None and not self.unanswered

    @property
    def done(self) -> bool:
        return self.complete and not self.outcomes and not self._answers

    def due_at(self) -> float | None:
        """When this batch needs a write-back of its own (else it rides on another's)."""
        if self.paced_at is None:
            return None
        if self.complete:
            return self.paced_at
        if not self.straggling:
            return self.paced_at + 2 * STRAGGLER_SECONDS
        if self.waiting_since is not None:
            return self.waiting_since + STRAGGLER_SECONDS
        return None

    def take(self, now: float) -> list[Outcome]:
        """The outcomes to write back now: all of them once every answer is in or the batch
        is straggling, else none."""
        with self._lock:
            answers, self._answers = self._answers, []
            self.waiting_since = None
            complete = self.complete
            if not complete and self.paced_at is not None:
                self.straggling = self.straggling or now - self.paced_at >= STRAGGLER_SECONDS
            due = complete or self.straggling
        self.outcomes += [
            Outcome(self.prepared[n][0], result=result, template=self.prepared[n][2])
            for n, result in answers
        ]
        gone = [n for n, result in answers if result.handling is Handling.MEDIA_GONE]
        if gone:  # Meta lost the uploaded file: the retry uploads it again
            media_forget(media_id_in(self.prepared[n][1]) for n in gone)
        if not due:
            return []
        outcomes, self.outcomes = self.outcomes, []
        return outcomes


# Requests still out when a sender's time budget ended: the next sender in this process writes
# them back (else the status webhook or the sweeper settles them, as any "maybe sent").
# (After a fork the requests stayed with the parent's event loop: a child adopts nothing.)
_carried: list[tuple[int, Batch]] = []
_carried_lock = threading.Lock()


class Flight:
    """One sender's batches in flight (and those an earlier sender in this process left)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.wake = threading.Event()
        with _carried_lock:
            self.batches = [batch for pid, batch in _carried if pid == os.getpid()]
            _carried.clear()
        for batch in self.batches:
            batch.wake = self.wake
        self.claimed = False

    def add(self, batch: Batch) -> None:
        self.claimed = True
        self.batches.append(batch)

    def has_room(self) -> bool:
        pacing = sum(batch.pacing for batch in self.batches)
        unanswered = sum(batch.unanswered for batch in self.batches)
        return pacing < PACING and unanswered < PACING * self.size + STRAGGLERS

    def write_back(self, *, until_room: bool) -> None:
        """Wait until something can be written back (or, with `until_room`, until another
        batch may be claimed), and write it back."""
        while self.batches:
            self.wake.clear()
            if self._write_back_due() or (until_room and self.has_room()):
                return
            self.wake.wait(self._next_look())

    def settle_answered(self) -> None:
        """Budget spent: wait until every batch is paced and all but its stragglers answered,
        write that back, and leave the stragglers to the next sender in this process."""
        while self.batches:
            self.wake.clear()
            now = time.monotonic()
            if all(
                b.complete or (b.paced_at is not None and now - b.paced_at >= STRAGGLER_SECONDS)
                for b in self.batches
            ):
                self._write_back_due(everything=True)
                break
            self._write_back_due()
            self.wake.wait(min(self._next_look(), 0.05))
        with _carried_lock:
            _carried.extend((os.getpid(), batch) for batch in self.batches)
        self.batches = []

    def finish(self) -> None:
        """Wait for every answer and write it all back (a sender that stops on an error)."""
        while self.batches:
            self.wake.clear()
            self._write_back_due(give_up=True)
            if self.batches:
                self.wake.wait(self._next_look())

    def _write_back_due(self, give_up: bool = False, everything: bool = False) -> bool:
        """One write-back for every batch that needs one, and what others have ready."""
        now = time.monotonic()
        late = [b for b in self.batches if not b.complete and now - b.started > b.wait_limit]
        due = [b.due_at() for b in self.batches]
        if not late and not everything and not any(at is not None and at <= now for at in due):
            return False
        outcomes = [outcome for batch in self.batches for outcome in batch.take(now)]
        self.batches = [batch for batch in self.batches if not batch.done and batch not in late]
        for batch in late:
            # Past this something is wrong (each request has its own timeout): give up like a
            # crash would, rows stay in `sending` for the statuses or the sweeper to settle.
            # Stop pacing the rest: a batch still sending after that would send them twice.
            if batch.future is not None:
                batch.future.cancel()
        if outcomes:
            settle(outcomes)
        if late and not give_up:
            raise TimeoutError(f"{len(late)} batch(es) unanswered past their time limit")
        if late:
            logger.error("gave up on %s batch(es) unanswered past their time limit", len(late))
        return bool(outcomes)

    def _next_look(self) -> float:
        now = time.monotonic()
        times = [1.0]
        for batch in self.batches:
            due = batch.due_at()
            if due is not None:
                times.append(due - now + 0.001)
            times.append(batch.started + batch.wait_limit - now + 0.001)
        return max(0.0, min(times))
