"""Binance diff-depth synchronisation for the feature engine: snapshot + diffs → book changes in order.

The market-data plane keeps its own synchronised book (R-MD-5); the feature engine also accepts raw
`DepthSnapshot`/`DepthUpdate` events (research on recordings), so it applies the same documented rules
(spec/binance-protocol.md):
- diffs are buffered until a snapshot arrives (in the shared recordings the bridging diff usually comes
  before the snapshot line);
- spot: drop diffs with u ≤ lastUpdateId; the first applied has U ≤ lastUpdateId + 1 ≤ u, then each
  U = previous u + 1;
- futures: drop diffs with u < lastUpdateId; the first applied has U ≤ lastUpdateId ≤ u, then each
  pu = previous u.
A break of the chain is counted in `gaps` and the book is dropped until the next snapshot: features
from a book with a hole would be silently wrong.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import IntEnum
from itertools import chain

import numpy as np

from kestrel.core.enums import Market
from kestrel.core.events import DepthSnapshot, DepthUpdate


class ChangeKind(IntEnum):
    RESET = 2  # replace the whole book (a snapshot)
    DIFF = 3  # apply levels (quantity 0 deletes)


@dataclass(frozen=True, slots=True)
class BookChange:
    kind: ChangeKind
    ts_event: int
    ts_init: int
    bids: np.ndarray  # (n, 2) price, quantity
    asks: np.ndarray


def levels_array(levels: list[tuple[float, float]]) -> np.ndarray:
    """(n, 2) float64 of (price, quantity); fromiter over the flattened pairs is the fastest path."""
    if not levels:
        return np.empty((0, 2))
    flat = np.fromiter(chain.from_iterable(levels), dtype=np.float64, count=2 * len(levels))
    return flat.reshape(-1, 2)


class BookSynchronizer:
    def __init__(self, market: Market, buffer_size: int = 2000) -> None:
        self.market = market
        self.synced = False
        self.gaps = 0
        self._last_update_id = -1
        self._first = True
        self._buffer: deque[DepthUpdate] = deque(maxlen=buffer_size)

    def on_snapshot(self, snapshot: DepthSnapshot) -> list[BookChange]:
        self.synced = True
        self._first = True
        self._last_update_id = snapshot.last_update_id
        changes = [
            BookChange(
                ChangeKind.RESET,
                snapshot.ts_event,
                snapshot.ts_init,
                levels_array(snapshot.bids),
                levels_array(snapshot.asks),
            )
        ]
        buffered = list(self._buffer)
        self._buffer.clear()
        for update in buffered:  # usable only from the snapshot's arrival on
            changes.extend(self.on_update(update, applied_at=snapshot.ts_init))
        return changes

    def on_update(self, update: DepthUpdate, applied_at: int | None = None) -> list[BookChange]:
        if not self.synced:
            self._buffer.append(update)
            return []
        futures = self.market is Market.FUTURES
        last = self._last_update_id
        if self._first:
            stale = update.final_update_id < last if futures else update.final_update_id <= last
            if stale:
                return []
            bridge = last if futures else last + 1
            if not update.first_update_id <= bridge <= update.final_update_id:
                return self._gap()
            self._first = False
        else:
            linked = update.previous_final_update_id == last if futures else update.first_update_id == last + 1
            if not linked:
                return self._gap()
        self._last_update_id = update.final_update_id
        ts_init = update.ts_init if applied_at is None else max(applied_at, update.ts_init)
        return [
            BookChange(ChangeKind.DIFF, update.ts_event, ts_init, levels_array(update.bids), levels_array(update.asks))
        ]

    def _gap(self) -> list[BookChange]:
        self.gaps += 1
        self.synced = False
        return []
