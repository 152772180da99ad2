"""`LiveBookView`: the feed's synchronised local book seen through the `BookView` protocol.

The same protocol the backtest gives strategies (`KernelBookView`), so one strategy class reads books
identically in both; prices come back as exact Decimals on the instrument's tick grid.
"""

from __future__ import annotations

from decimal import Decimal

from kestrel.binance.order_book import OrderBook
from kestrel.core.instrument import Instrument


class LiveBookView:
    def __init__(self, book: OrderBook, instrument: Instrument) -> None:
        self._book = book
        self._instrument = instrument
        self._tick = instrument.tick_size

    def _price(self, value: float) -> Decimal:
        return Decimal(repr(value)).quantize(self._tick)

    @property
    def symbol(self) -> str:
        return self._book.symbol

    @property
    def best_bid_price(self) -> Decimal | None:
        level = self._book.best_bid()
        return self._price(level[0]) if level else None

    @property
    def best_ask_price(self) -> Decimal | None:
        level = self._book.best_ask()
        return self._price(level[0]) if level else None

    @property
    def best_bid_qty(self) -> Decimal:
        level = self._book.best_bid()
        return Decimal(repr(level[1])) if level else Decimal(0)

    @property
    def best_ask_qty(self) -> Decimal:
        level = self._book.best_ask()
        return Decimal(repr(level[1])) if level else Decimal(0)

    @property
    def best_bid_tick(self) -> int:
        price = self.best_bid_price
        return self._instrument.price_to_ticks(price) if price is not None else -1

    @property
    def best_ask_tick(self) -> int:
        price = self.best_ask_price
        return self._instrument.price_to_ticks(price) if price is not None else -1

    @property
    def mid(self) -> float | None:
        return self._book.mid()

    def bids(self, depth: int = 10) -> list[tuple[Decimal, Decimal]]:
        return [(self._price(p), Decimal(repr(q))) for p, q in self._book.bids(depth)]

    def asks(self, depth: int = 10) -> list[tuple[Decimal, Decimal]]:
        return [(self._price(p), Decimal(repr(q))) for p, q in self._book.asks(depth)]
