"""The simulator's L2 books.

`LevelBook` holds one symbol's book as integer price keys → integer quantities, with each side's prices
kept sorted (bisect on a plain list: books here hold a few hundred levels, where a list insert is a
short memmove and beats tree structures written in Python). It also keeps an undo log of recent
changes, so the book as it was at any recent update id can be rebuilt (`view_at`): a client that
has just resynced compares its book with exactly that state.

Keys are synthetic ticks/lots in the synthetic market and exact scaled integers in replay; the caller
turns keys into Decimals for `BookView`.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, insort
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal

Level = tuple[Decimal, Decimal]


@dataclass(frozen=True, slots=True)
class BookView:
    """A book at `last_update_id`: bids best (highest) first, asks best (lowest) first."""

    last_update_id: int
    bids: list[Level]
    asks: list[Level]

    @property
    def best_bid(self) -> Level | None:
        return self.bids[0] if self.bids else None

    @property
    def best_ask(self) -> Level | None:
        return self.asks[0] if self.asks else None

    def is_crossed(self) -> bool:
        return bool(self.bids and self.asks and self.bids[0][0] >= self.asks[0][0])


class SideBook:
    """One side: price → quantity, prices sorted ascending."""

    __slots__ = ("levels", "prices")

    def __init__(self) -> None:
        self.levels: dict[int, int] = {}
        self.prices: list[int] = []

    def __len__(self) -> int:
        return len(self.prices)

    def set(self, price: int, quantity: int) -> int:
        """Set a level (0 removes it); returns the previous quantity (0 if absent)."""
        previous = self.levels.get(price, 0)
        if quantity > 0:
            if previous == 0:
                insort(self.prices, price)
            self.levels[price] = quantity
        elif previous:
            del self.levels[price]
            del self.prices[bisect_left(self.prices, price)]
        return previous

    def copy(self) -> SideBook:
        other = SideBook()
        other.levels = dict(self.levels)
        other.prices = list(self.prices)
        return other


class UndoLog:
    """A ring of the last `capacity` changes as raw int64 arrays (a few bytes per change instead of a
    tuple of Python ints: 300 books × thousands of changes). The side is the sign of the price."""

    __slots__ = ("_head", "_ids", "_prices", "_quantities", "capacity", "count")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids = array("q", bytes(8 * capacity))
        self._prices = array("q", bytes(8 * capacity))
        self._quantities = array("q", bytes(8 * capacity))
        self._head = 0  # next slot to write
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def append(self, update_id: int, is_bid: bool, price: int, previous: int) -> int | None:
        """Log a change; returns the id of the change it pushed out, if the ring was full."""
        head = self._head
        evicted = self._ids[head] if self.count == self.capacity else None
        self._ids[head] = update_id
        self._prices[head] = price if is_bid else -price
        self._quantities[head] = previous
        self._head = (head + 1) % self.capacity
        if self.count < self.capacity:
            self.count += 1
        return evicted

    def clear(self) -> None:
        self._head = 0
        self.count = 0

    def newest_first(self) -> Iterator[tuple[int, bool, int, int]]:
        """(update id, is_bid, price, previous quantity), newest first."""
        ids, prices, quantities = self._ids, self._prices, self._quantities
        index = self._head
        for _ in range(self.count):
            index = index - 1 if index else self.capacity - 1
            price = prices[index]
            yield ids[index], price > 0, abs(price), quantities[index]

    def id_back(self, steps: int) -> int | None:
        """The id of the change `steps` before the newest (0 = the newest), if still logged."""
        if steps >= self.count:
            return None
        return self._ids[(self._head - 1 - steps) % self.capacity]


class LevelBook:
    """Both sides of one symbol's book plus the update id and an undo log of recent changes."""

    __slots__ = ("_reachable_from", "asks", "bids", "history_limit", "last_update_id", "undo")

    def __init__(self, history_limit: int = 4096) -> None:
        self.bids = SideBook()
        self.asks = SideBook()
        self.last_update_id = 0
        self.history_limit = history_limit
        # the recent changes; several may share one id (a replayed diff applies all its levels under its `u`)
        self.undo = UndoLog(history_limit)
        self._reachable_from = 0  # the oldest id whose state can be rebuilt

    def apply(self, update_id: int, is_bid: bool, price: int, quantity: int) -> int:
        """Set one level under `update_id` (which must not go backwards); returns the previous quantity."""
        side = self.bids if is_bid else self.asks
        previous = side.set(price, quantity)
        self.last_update_id = update_id
        evicted = self.undo.append(update_id, is_bid, price, previous)
        if evicted is not None:
            # the state right after the evicted change's id stays reachable: every later change is logged
            self._reachable_from = evicted
        return previous

    def reset(self, update_id: int, bids: dict[int, int], asks: dict[int, int]) -> None:
        """Replace the whole book (a snapshot); the undo log restarts from here."""
        self.bids = SideBook()
        self.asks = SideBook()
        for price, quantity in bids.items():
            self.bids.set(price, quantity)
        for price, quantity in asks.items():
            self.asks.set(price, quantity)
        self.last_update_id = update_id
        self.undo.clear()
        self._reachable_from = update_id

    def best_bid(self) -> int | None:
        return self.bids.prices[-1] if self.bids.prices else None

    def best_ask(self) -> int | None:
        return self.asks.prices[0] if self.asks.prices else None

    def oldest_reachable_id(self) -> int:
        """The smallest update id `view_at` can rebuild."""
        return self._reachable_from

    def top(self, limit: int | None = None) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(bids best first, asks best first) as (price, quantity) keys, at most `limit` per side."""
        bid_prices = self.bids.prices if limit is None else self.bids.prices[-limit:]
        ask_prices = self.asks.prices if limit is None else self.asks.prices[:limit]
        bids = [(price, self.bids.levels[price]) for price in reversed(bid_prices)]
        asks = [(price, self.asks.levels[price]) for price in ask_prices]
        return bids, asks

    def levels_at(self, update_id: int) -> tuple[dict[int, int], dict[int, int]]:
        """Both sides as they were right after `update_id`. Raises LookupError beyond the undo log."""
        if update_id > self.last_update_id:
            raise LookupError(f"update id {update_id} is in the future (book is at {self.last_update_id})")
        if update_id < self.oldest_reachable_id():
            raise LookupError(f"update id {update_id} is older than the undo log ({self.oldest_reachable_id()})")
        bids = dict(self.bids.levels)
        asks = dict(self.asks.levels)
        for change_id, is_bid, price, previous in self.undo.newest_first():
            if change_id <= update_id:
                break
            side = bids if is_bid else asks
            if previous:
                side[price] = previous
            else:
                side.pop(price, None)
        return bids, asks

    def view(
        self, price_of: Callable[[int], Decimal], quantity_of: Callable[[int], Decimal], limit: int | None = None
    ) -> BookView:
        bids, asks = self.top(limit)
        return BookView(
            self.last_update_id,
            [(price_of(price), quantity_of(quantity)) for price, quantity in bids],
            [(price_of(price), quantity_of(quantity)) for price, quantity in asks],
        )

    def view_at(
        self, update_id: int, price_of: Callable[[int], Decimal], quantity_of: Callable[[int], Decimal]
    ) -> BookView:
        bids, asks = self.levels_at(update_id)
        return BookView(
            update_id,
            [(price_of(price), quantity_of(bids[price])) for price in sorted(bids, reverse=True)],
            [(price_of(price), quantity_of(asks[price])) for price in sorted(asks)],
        )
