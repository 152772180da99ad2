"""The kernel's arrays, owned in Python: books, order slots, control block; and read-only book views."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import numpy as np

from kestrel.core.instrument import Instrument
from kestrel.matching import kernel as k


class KernelState:
    """All arrays the compiled kernel works on, for one engine."""

    def __init__(
        self, instruments: Sequence[Instrument], window_ticks: int, queue_model: int, queue_power: float
    ) -> None:
        count = max(1, len(instruments))
        if window_ticks < 1024:
            raise ValueError("the book window must hold at least 1024 ticks")
        self.sym_state = np.zeros((count, k.SYMBOL_COLUMNS), dtype=np.int64)
        for book in range(2):
            self.sym_state[:, k.S_BEST_BID + 3 * book] = k.NO_PRICE
            self.sym_state[:, k.S_BEST_ASK + 3 * book] = k.NO_PRICE
            self.sym_state[:, k.S_BASE + 3 * book] = k.NO_BASE
        self.sym_state[:, k.S_LAST_TICK] = k.NO_PRICE
        self.sym_state[:, k.S_MARK_TICK] = k.NO_PRICE
        self.sym_state[:, k.S_BUY_LOW] = k.NO_LOW
        self.sym_state[:, k.S_BUY_HIGH] = k.NO_HIGH
        self.sym_state[:, k.S_SELL_LOW] = k.NO_LOW
        self.sym_state[:, k.S_SELL_HIGH] = k.NO_HIGH
        self.lots = np.zeros((2, count, 2, window_ticks), dtype=np.int64)
        self.orders = np.zeros((0, k.ORDER_COLUMNS), dtype=np.int64)
        self.ahead = np.zeros(0, dtype=np.float64)
        self.out = np.zeros((8, k.OUT_COLUMNS), dtype=np.int64)
        self.ctl = np.zeros(k.CTL_SIZE, dtype=np.int64)
        self.params = np.zeros(k.PARAMS_SIZE, dtype=np.float64)
        self.params[k.P_QUEUE_MODEL] = queue_model
        self.params[k.P_QUEUE_POWER] = queue_power
        self.taker_fills = np.zeros((4096, 2), dtype=np.int64)
        self._free_slots: list[int] = []
        self._grow(16)

    # ---- slots -------------------------------------------------------------------------------------
    def _grow(self, capacity: int) -> None:
        old = self.orders.shape[0]
        orders = np.zeros((capacity, k.ORDER_COLUMNS), dtype=np.int64)
        orders[:old] = self.orders
        ahead = np.zeros(capacity, dtype=np.float64)
        ahead[:old] = self.ahead
        self.orders, self.ahead = orders, ahead
        self.out = np.zeros((2 * capacity + 8, k.OUT_COLUMNS), dtype=np.int64)
        self._free_slots.extend(range(capacity - 1, old - 1, -1))

    def allocate(self) -> int:
        if not self._free_slots:
            self._grow(2 * self.orders.shape[0])
        slot = self._free_slots.pop()
        self.orders[slot, :] = 0
        self.orders[slot, k.O_CAP] = k.UNCAPPED
        self.ahead[slot] = 0.0
        if slot + 1 > self.ctl[k.CTL_ORDER_SLOTS]:
            self.ctl[k.CTL_ORDER_SLOTS] = slot + 1
        return slot

    def activate(self, slot: int, state: int, sym: int) -> None:
        """Put an allocated slot to work (`state`); counts it for its symbol."""
        if self.orders[slot, k.O_STATE] == k.STATE_FREE:
            self.sym_state[sym, k.S_ORDERS] += 1
        self.orders[slot, k.O_STATE] = state
        self.orders[slot, k.O_SYMBOL] = sym
        self.refresh(sym)

    def release(self, slot: int) -> None:
        """Take a slot off the kernel (if still active there) and return it to the free list."""
        sym = int(self.orders[slot, k.O_SYMBOL])
        if self.orders[slot, k.O_STATE] != k.STATE_FREE:
            self.sym_state[sym, k.S_ORDERS] -= 1
            self.orders[slot, k.O_STATE] = k.STATE_FREE
        self._free_slots.append(slot)
        self.refresh(sym)

    def refresh(self, sym: int) -> None:
        """Recompute the kernel's shortcuts for `sym` after an order started or stopped resting."""
        k.refresh_bounds(self.orders, self.sym_state, self.ctl, sym)

    # ---- prices ------------------------------------------------------------------------------------
    def best(self, sym: int, side: int, book: int = 0) -> int:
        return int(self.sym_state[sym, k.S_BEST_BID + side + 3 * book])

    def last_tick(self, sym: int) -> int:
        return int(self.sym_state[sym, k.S_LAST_TICK])

    def level(self, sym: int, side: int, tick: int, book: int = 0) -> int:
        return int(k.level_lots(self.lots, self.sym_state, book, sym, side, tick))


class KernelBookView:
    """The strategy's (delayed) view of one symbol's book, read straight from the kernel's arrays.

    Prices and quantities are exact Decimals on the instrument's grid; `*_tick` / `*_lots` give the
    scaled integers for code that wants to stay in integers.
    """

    __slots__ = ("_ask_column", "_bid_column", "_book", "_row", "_state", "_sym", "instrument")

    def __init__(self, state: KernelState, sym: int, instrument: Instrument, book: int = 1) -> None:
        self._state = state
        self._sym = sym
        self._book = book
        self.instrument = instrument
        # the symbol's row of `sym_state` (a view: the array is never replaced) and its best-price
        # columns, so a strategy's read is one `item()` (callback strategies read these per event)
        self._row = state.sym_state[sym]
        self._bid_column = k.S_BEST_BID + 3 * book
        self._ask_column = k.S_BEST_ASK + 3 * book

    @property
    def symbol(self) -> str:
        return self.instrument.symbol

    @property
    def best_bid_tick(self) -> int:
        tick: int = self._row.item(self._bid_column)
        return tick

    @property
    def best_ask_tick(self) -> int:
        tick: int = self._row.item(self._ask_column)
        return tick

    @property
    def best_bid_price(self) -> Decimal | None:
        tick = self.best_bid_tick
        return self.instrument.ticks_to_price(tick) if tick != k.NO_PRICE else None

    @property
    def best_ask_price(self) -> Decimal | None:
        tick = self.best_ask_tick
        return self.instrument.ticks_to_price(tick) if tick != k.NO_PRICE else None

    def _qty(self, side: int, tick: int) -> Decimal:
        if tick == k.NO_PRICE:
            return Decimal(0)
        return self.instrument.lots_to_quantity(self._state.level(self._sym, side, tick, self._book))

    @property
    def best_bid_qty(self) -> Decimal:
        return self._qty(0, self.best_bid_tick)

    @property
    def best_ask_qty(self) -> Decimal:
        return self._qty(1, self.best_ask_tick)

    @property
    def mid(self) -> float | None:
        bid: int = self._row.item(self._bid_column)
        ask: int = self._row.item(self._ask_column)
        if bid == k.NO_PRICE or ask == k.NO_PRICE:
            return None
        return (bid + ask) / 2 * float(self.instrument.tick_size)

    def levels(self, side: int, depth: int = 10) -> list[tuple[Decimal, Decimal]]:
        rows = k.top_levels(self._state.lots, self._state.sym_state, self._book, self._sym, side, depth)
        return [(self.instrument.ticks_to_price(int(t)), self.instrument.lots_to_quantity(int(q))) for t, q in rows]

    def bids(self, depth: int = 10) -> list[tuple[Decimal, Decimal]]:
        return self.levels(0, depth)

    def asks(self, depth: int = 10) -> list[tuple[Decimal, Decimal]]:
        return self.levels(1, depth)
