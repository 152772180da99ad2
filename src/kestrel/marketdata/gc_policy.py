"""When the cyclic garbage collector runs in an ingest process.

A full (generation 2) collection walks every tracked container; with the recorder's buffers holding
tens of seconds of depth events (each with its level lists) that is 100k+ lists and a pause of
hundreds of milliseconds — measured as event-loop lag in benchmarks/ingest_sim.py. Market events are
acyclic and freed by reference counting; the collector is only needed for the occasional cycle
(asyncio futures and tracebacks). So, in a process that opts in:

- after start-up, everything alive is frozen (never scanned again) and automatic collection is off;
- the young generations are collected every second (cheap: only what was allocated meanwhile);
- a full collection runs right after the recorder has written a batch (its buffers were just freed,
  so there is little to scan), or every `full_every_s` when nothing records.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass

from kestrel.core.events import NANOS_PER_SECOND


@dataclass
class GcPolicy:
    young_every_s: float = 1.0
    full_every_s: float = 300.0
    young_collections: int = 0
    full_collections: int = 0
    _last_young_ns: int = 0
    _last_full_ns: int = 0
    _batches_seen: int = 0
    _was_enabled: bool = True

    def start(self) -> None:
        self._was_enabled = gc.isenabled()
        gc.collect()
        gc.freeze()  # start-up objects (modules, functions, books) are permanent: never scan them again
        gc.disable()

    def tick(self, now_ns: int, recorder_batches: int) -> None:
        if (
            recorder_batches != self._batches_seen
            or now_ns - self._last_full_ns >= self.full_every_s * NANOS_PER_SECOND
        ):
            self._batches_seen = recorder_batches
            self._last_full_ns = self._last_young_ns = now_ns
            gc.collect()
            self.full_collections += 1
        elif now_ns - self._last_young_ns >= self.young_every_s * NANOS_PER_SECOND:
            self._last_young_ns = now_ns
            gc.collect(1)
            self.young_collections += 1

    def stop(self) -> None:
        gc.unfreeze()
        if self._was_enabled:
            gc.enable()
