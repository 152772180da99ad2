"""Sequence checks of the id-carrying streams: what is missing, repeated or late.

- Trade ids (`trade.t`) and aggregate ids (`aggTrade.a`) are contiguous per symbol (SOURCES.md checks
  it on the real recordings), so a hole is a dropped message and is counted exactly; a late message
  that fills a hole turns that drop into an out-of-order arrival.
- bookTicker `u` only grows; an older or equal `u` is stale and must not overwrite a newer top of book.

Depth continuity (`U`/`u`/`pu`) lives in `book_sync`, next to the book it protects.
"""

from __future__ import annotations

from dataclasses import dataclass

from kestrel.core.events import QualityFlag

_MAX_HOLES = 256  # hole intervals remembered to recognise late arrivals; older holes stay counted as drops

_GAP = int(QualityFlag.GAP_BEFORE)
_DUPLICATE = int(QualityFlag.DUPLICATE)
_OUT_OF_ORDER = int(QualityFlag.OUT_OF_ORDER)
REJECTED_FLAGS = _DUPLICATE | _OUT_OF_ORDER
"""Flags marking an event that must not update state (it is stale or already seen)."""


@dataclass(slots=True)
class SequenceCounters:
    messages: int = 0
    gaps: int = 0  # sequence breaks (depth) or holes (trade ids)
    drops: int = 0  # messages known missing (trade ids in holes not filled later)
    duplicates: int = 0
    out_of_order: int = 0


class IdSequence:
    """Contiguous ids: `check(id)` returns the QualityFlag bits for that message."""

    __slots__ = ("_holes", "counters", "last_id")

    def __init__(self) -> None:
        self.last_id: int | None = None
        self._holes: list[list[int]] = []  # [first, last] missing ids, oldest first
        self.counters = SequenceCounters()

    def check(self, message_id: int) -> int:
        counters = self.counters
        counters.messages += 1
        last = self.last_id
        if last is None or message_id == last + 1:
            self.last_id = message_id
            return 0
        if message_id > last:
            counters.gaps += 1
            counters.drops += message_id - last - 1
            self._holes.append([last + 1, message_id - 1])
            if len(self._holes) > _MAX_HOLES:
                del self._holes[0]
            self.last_id = message_id
            return _GAP
        if self._fill_hole(message_id):
            counters.drops -= 1
            counters.out_of_order += 1
            return _OUT_OF_ORDER
        counters.duplicates += 1
        return _DUPLICATE

    def _fill_hole(self, message_id: int) -> bool:
        for index, hole in enumerate(self._holes):
            first, last = hole
            if first <= message_id <= last:
                if first == last:
                    del self._holes[index]
                elif message_id == first:
                    hole[0] = first + 1
                elif message_id == last:
                    hole[1] = last - 1
                else:
                    hole[1] = message_id - 1
                    self._holes.insert(index + 1, [message_id + 1, last])
                return True
        return False

    @property
    def missing(self) -> int:
        """Ids currently known missing (within the remembered holes)."""
        return sum(last - first + 1 for first, last in self._holes)


class MonotonicSequence:
    """Ids that only grow (bookTicker `u`): equal is a duplicate, smaller is out of order."""

    __slots__ = ("counters", "last_id")

    def __init__(self) -> None:
        self.last_id: int | None = None
        self.counters = SequenceCounters()

    def check(self, message_id: int) -> int:
        self.counters.messages += 1
        last = self.last_id
        if last is None or message_id > last:
            self.last_id = message_id
            return 0
        if message_id == last:
            self.counters.duplicates += 1
            return _DUPLICATE
        self.counters.out_of_order += 1
        return _OUT_OF_ORDER
