"""Symbol registry and shard plan (R-MD-1, R-MD-2).

The registry maps every (market, symbol) to a small integer id (stable for the process: assigned in
sorted order) and keeps its Instrument. The plan splits every stream of every symbol over connections:

- a stream name is ``<symbol lower>@<token>`` (tokens from `data.ingest.streams`: ``bookTicker``,
  ``aggTrade``, ``trade``, ``depth@100ms``, ``kline_1m``, ``markPrice``, ``forceOrder``, ...);
- spot has one route; USD-M streams are split by route as the exchange requires (spec §1.1): depth and
  bookTicker on ``/public``, everything else on ``/market`` (a route-less connection gets nothing else);
- markPrice and forceOrder exist only on futures and are skipped for spot;
- each connection carries at most `streams_per_connection` streams; a symbol's streams of one route are
  kept on one connection where possible, so an outage hits few symbols completely rather than many
  symbols partly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from kestrel.core.enums import Market
from kestrel.core.errors import ConfigurationError
from kestrel.core.instrument import Instrument

FUTURES_ONLY = ("markPrice", "forceOrder")
PUBLIC_TOKENS = ("depth", "bookTicker")


class Route(StrEnum):
    SPOT = ""  # spot streams: no route segment
    PUBLIC = "public"
    MARKET = "market"


@dataclass(frozen=True, slots=True)
class Shard:
    """One connection's worth of streams."""

    index: int
    market: Market
    route: Route
    streams: tuple[str, ...]

    @property
    def name(self) -> str:
        route = f"/{self.route.value}" if self.route.value else ""
        return f"{self.market.value}{route}#{self.index}"

    @property
    def symbols(self) -> list[str]:
        return sorted({stream.split("@", 1)[0].upper() for stream in self.streams})


@dataclass
class SymbolRegistry:
    """(market, symbol) → integer id and Instrument."""

    instruments: dict[tuple[Market, str], Instrument] = field(default_factory=dict)
    ids: dict[tuple[Market, str], int] = field(default_factory=dict)

    @classmethod
    def from_instruments(cls, instruments: Iterable[Instrument]) -> SymbolRegistry:
        registry = cls()
        registry.update(instruments)
        return registry

    def update(self, instruments: Iterable[Instrument]) -> tuple[list[Instrument], list[tuple[Market, str]]]:
        """Replace the instrument set (daily rules refresh); returns (added, removed). Ids are never reused."""
        fresh = {(i.market, str(i.symbol)): i for i in instruments}
        added = [fresh[key] for key in sorted(fresh.keys() - self.instruments.keys())]
        removed = sorted(self.instruments.keys() - fresh.keys())
        self.instruments = fresh
        for key in sorted(fresh):
            if key not in self.ids:
                self.ids[key] = len(self.ids)
        return added, removed

    def symbols(self, market: Market) -> list[str]:
        return sorted(symbol for m, symbol in self.instruments if m is market)

    def id_of(self, market: Market, symbol: str) -> int:
        return self.ids[(market, symbol)]

    def __len__(self) -> int:
        return len(self.instruments)


def route_of(market: Market, token: str) -> Route:
    if market is Market.SPOT:
        return Route.SPOT
    return Route.PUBLIC if token.split("@", 1)[0] in PUBLIC_TOKENS else Route.MARKET


def stream_names(market: Market, symbol: str, tokens: Sequence[str]) -> list[tuple[Route, str]]:
    """The streams of one symbol, with their route."""
    result = []
    for token in tokens:
        if market is Market.SPOT and token.split("@", 1)[0] in FUTURES_ONLY:
            continue
        result.append((route_of(market, token), f"{symbol.lower()}@{token}"))
    return result


def plan_shards(
    symbols_by_market: Mapping[Market, Sequence[str]], tokens: Sequence[str], streams_per_connection: int
) -> list[Shard]:
    """Split every stream over connections of at most `streams_per_connection` streams."""
    if streams_per_connection < 1:
        raise ConfigurationError("streams_per_connection must be at least 1")
    shards: list[Shard] = []
    for market in sorted(symbols_by_market):
        by_route: dict[Route, list[list[str]]] = {}
        for symbol in sorted(symbols_by_market[market]):
            groups: dict[Route, list[str]] = {}
            for route, name in stream_names(market, symbol, tokens):
                groups.setdefault(route, []).append(name)
            for route, names in groups.items():
                by_route.setdefault(route, []).append(names)
        for route in sorted(by_route):
            current: list[str] = []
            for names in by_route[route]:
                if current and len(current) + len(names) > streams_per_connection:
                    shards.append(Shard(len(shards), market, route, tuple(current)))
                    current = []
                for name in names:  # a symbol with more streams than a connection holds is split
                    current.append(name)
                    if len(current) == streams_per_connection:
                        shards.append(Shard(len(shards), market, route, tuple(current)))
                        current = []
            if current:
                shards.append(Shard(len(shards), market, route, tuple(current)))
    return shards
