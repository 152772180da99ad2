"""A local L2 order book, built for the diff-depth hot path.

Levels are keyed by the price float decoded from the wire's decimal string. That key is exact: one
decimal string always decodes to the same float and two different prices of at most 17 significant
digits never decode to the same one, so keys never split or merge over float noise. (Consumers that
need integer ticks convert with `Instrument.price_to_ticks` at the boundary.)

Each side is a dict price → quantity plus a binary heap of prices with lazy deletion: an update of
an existing level is one dict store, a new level one `heappush`, a removal one dict pop; stale heap
entries are discarded when they surface at the top, and the heap is rebuilt when they pile up.
Hand-written because this beats sorted containers (a `bisect`-maintained list costs a memmove per
inserted or removed level, and half the updates of a futures `@0ms` stream insert or remove one) —
measured in benchmarks/decode_book.py. The best `n` levels are read by walking the heap from its root.
"""

from __future__ import annotations

from collections.abc import Iterable
from heapq import heapify, heappop, heappush

from kestrel.core.enums import Market

Level = tuple[float, float]

_COMPACT_SLACK = 64  # heap entries allowed beyond 2 × live levels before a rebuild


def _top(heap: list[float], quantities: dict[float, float], depth: int, sign: float) -> list[Level]:
    """The `depth` best live levels of a lazy heap (prices stored as `sign × price`), best first."""
    result: list[Level] = []
    if not heap or depth <= 0:
        return result
    seen: set[float] = set()
    frontier: list[tuple[float, int]] = [(heap[0], 0)]
    size = len(heap)
    while frontier and len(result) < depth:
        value, index = heappop(frontier)
        price = sign * value
        if price not in seen:
            quantity = quantities.get(price)
            if quantity is not None:
                seen.add(price)
                result.append((price, quantity))
        child = 2 * index + 1
        if child < size:
            heappush(frontier, (heap[child], child))
            if child + 1 < size:
                heappush(frontier, (heap[child + 1], child + 1))
    return result


class OrderBook:
    """Bids and asks of one symbol, with the id and exchange time of the last applied update."""

    __slots__ = ("_ask_heap", "_asks", "_bid_heap", "_bids", "market", "symbol", "ts_event", "update_id")

    def __init__(self, market: Market, symbol: str) -> None:
        self.market = market
        self.symbol = symbol
        self.update_id = -1
        self.ts_event = 0
        self._bids: dict[float, float] = {}
        self._asks: dict[float, float] = {}
        self._bid_heap: list[float] = []  # negated prices: the heap's smallest is the best bid
        self._ask_heap: list[float] = []

    def reset(self, bids: Iterable[Level], asks: Iterable[Level], update_id: int, ts_event: int) -> None:
        """Replace the whole book (a snapshot)."""
        self._bids = {price: quantity for price, quantity in bids if quantity != 0.0}
        self._asks = {price: quantity for price, quantity in asks if quantity != 0.0}
        self._bid_heap = [-price for price in self._bids]
        self._ask_heap = list(self._asks)
        heapify(self._bid_heap)
        heapify(self._ask_heap)
        self.update_id = update_id
        self.ts_event = ts_event

    def clear(self) -> None:
        self.reset((), (), -1, 0)

    def apply(self, bids: Iterable[Level], asks: Iterable[Level], update_id: int, ts_event: int) -> None:
        """Apply absolute quantities per level; quantity 0 removes the level.

        Removing a level we never had is normal (it was outside the snapshot's depth) and ignored.
        """
        quantities = self._bids
        heap = self._bid_heap
        remove = quantities.pop
        for price, quantity in bids:
            if quantity:
                if price not in quantities:
                    heappush(heap, -price)
                quantities[price] = quantity
            else:
                remove(price, None)
        if len(heap) > 2 * len(quantities) + _COMPACT_SLACK:
            self._bid_heap = [-price for price in quantities]
            heapify(self._bid_heap)
        quantities = self._asks
        heap = self._ask_heap
        remove = quantities.pop
        for price, quantity in asks:
            if quantity:
                if price not in quantities:
                    heappush(heap, price)
                quantities[price] = quantity
            else:
                remove(price, None)
        if len(heap) > 2 * len(quantities) + _COMPACT_SLACK:
            self._ask_heap = list(quantities)
            heapify(self._ask_heap)
        self.update_id = update_id
        self.ts_event = ts_event

    # ---- reading ----------------------------------------------------------------------------
    @property
    def is_empty(self) -> bool:
        return not self._bids and not self._asks

    @property
    def bid_depth(self) -> int:
        return len(self._bids)

    @property
    def ask_depth(self) -> int:
        return len(self._asks)

    def best_bid(self) -> Level | None:
        heap, quantities = self._bid_heap, self._bids
        while heap:
            price = -heap[0]
            quantity = quantities.get(price)
            if quantity is not None:
                return price, quantity
            heappop(heap)
        return None

    def best_ask(self) -> Level | None:
        heap, quantities = self._ask_heap, self._asks
        while heap:
            price = heap[0]
            quantity = quantities.get(price)
            if quantity is not None:
                return price, quantity
            heappop(heap)
        return None

    def is_crossed(self) -> bool:
        """True when the best bid is at or above the best ask (a corrupt book)."""
        bid, ask = self.best_bid(), self.best_ask()
        return bid is not None and ask is not None and bid[0] >= ask[0]

    def bids(self, depth: int | None = None) -> list[Level]:
        """Bid levels, best (highest) first; all of them when `depth` is None."""
        if depth is None:
            return sorted(self._bids.items(), reverse=True)
        return _top(self._bid_heap, self._bids, depth, -1.0)

    def asks(self, depth: int | None = None) -> list[Level]:
        """Ask levels, best (lowest) first; all of them when `depth` is None."""
        if depth is None:
            return sorted(self._asks.items())
        return _top(self._ask_heap, self._asks, depth, 1.0)

    def as_dicts(self) -> tuple[dict[float, float], dict[float, float]]:
        """(bids, asks) as price → quantity copies, for comparing books."""
        return dict(self._bids), dict(self._asks)

    def mid(self) -> float | None:
        bid, ask = self.best_bid(), self.best_ask()
        if bid is None or ask is None:
            return None
        return (bid[0] + ask[0]) / 2.0
