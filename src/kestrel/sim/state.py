"""What the route modules share: the server state and the market source interface.

Route groups (`register_market_routes` for REST, the WS handlers, later the trading half) receive one
`SimulatorState`; a source (the synthetic market or a replay) sits behind `MarketSource`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from kestrel.core.enums import Market
from kestrel.sim.book import BookView
from kestrel.sim.faults import FaultInjector
from kestrel.sim.hub import StreamHub
from kestrel.sim.instruments import SymbolSpec
from kestrel.sim.options import SimulatorOptions
from kestrel.sim.stats import SimulatorStats
from kestrel.sim.timeline import Timeline


class UnknownSymbol(LookupError):
    """The source does not have this symbol (REST answers -1121)."""


class BookUnavailable(LookupError):
    """The source cannot serve this symbol's book (a replay without a recorded snapshot)."""


class MarketSource(Protocol):
    """A market the server can serve: the synthetic market or a replayed recording."""

    def origin_ns(self) -> int | None:
        """Where the timeline starts (None: the wall clock now)."""
        ...

    def exchange_offset_ns(self) -> int:
        """The exchange clock minus the timeline (a replay's recorder offset)."""
        ...

    def finished(self) -> bool: ...

    def specs(self, market: Market) -> list[SymbolSpec]: ...

    def exchange_info(self, market: Market, server_time_ms: int) -> dict[str, Any]: ...

    def start(self, origin_ns: int) -> None: ...

    def advance(self, until_ns: int, max_events: int = 1 << 62) -> int:
        """Process events up to `until_ns`, at most `max_events` (the pump yields between turns)."""
        ...

    def next_event_ns(self) -> int | None: ...

    def canonical(self, market: Market, name: str) -> str: ...

    def set_skew_ns(self, skew_ns: int) -> None: ...

    def depth_snapshot(self, market: Market, symbol: str, limit: int, stale_ms: int) -> tuple[bytes, bool]:
        """(REST body, served stale): the book now, or as it was `stale_ms` ago. Raises UnknownSymbol."""
        ...

    def klines(
        self, market: Market, symbol: str, interval: str, start_ms: int | None, end_ms: int | None, limit: int
    ) -> list[list[object]]: ...

    def agg_trades(self, market: Market, symbol: str) -> list[dict[str, object]]:
        """Recent aggregate trades, oldest first (REST rows)."""
        ...

    def premium_index(self, symbol: str | None) -> list[dict[str, object]]: ...

    def funding_rates(self, symbol: str | None) -> list[dict[str, object]]: ...

    def open_interest(self, symbol: str) -> dict[str, object]:
        """USD-M open interest now. Raises UnknownSymbol / BookUnavailable."""
        ...

    def book_view(self, market: Market, symbol: str, limit: int | None = None) -> BookView: ...

    def book_view_at(self, market: Market, symbol: str, update_id: int) -> BookView: ...


@dataclass(slots=True)
class WeightWindow:
    """REQUEST_WEIGHT used in the current window of one market, and the ban state (spec §4.4)."""

    window_s: float
    limit: int
    window_start_s: float = 0.0
    used: int = 0
    over_limit_requests: int = 0
    banned_until_s: float = 0.0

    def add(self, weight: int, now_s: float) -> int:
        if now_s - self.window_start_s >= self.window_s:
            self.window_start_s = now_s - (now_s - self.window_start_s) % self.window_s
            self.used = 0
        self.used += weight
        return self.used

    def seconds_to_reset(self, now_s: float) -> float:
        return max(0.0, self.window_start_s + self.window_s - now_s)


@dataclass
class SimulatorState:
    options: SimulatorOptions
    timeline: Timeline
    stats: SimulatorStats
    faults: FaultInjector
    hub: StreamHub
    source: MarketSource
    weights: dict[Market, WeightWindow] = field(default_factory=dict)
    connection_times_s: deque[float] = field(default_factory=deque)  # accepted WS connections (per-IP budget)
    # lockstep (kestrel.sim.lockstep): REST depth waits until the run reaches the snapshot's local time
    depth_gate: Callable[[Market, str], Awaitable[None]] | None = None

    def server_time_ms(self) -> int:
        return self.timeline.server_ms()
