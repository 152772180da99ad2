"""Stream names: grammar, kinds, and which USD-M route serves which stream (spec §1.1, §2).

Names are lower case (`btcusdt@depth@100ms`); market-wide streams start with `!` (`!markPrice@arr@1s`).
USD-M splits its streams across routes: `/public` carries the high-frequency book streams (bookTicker,
diff and partial depth), `/market` everything else (aggTrade, markPrice, kline, tickers, forceOrder,
and the undocumented `trade`, whose route after the split is unverified: we put it on /market).
A futures connection opened without a route is treated like `/public`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from kestrel.core.enums import Market


class StreamKind(StrEnum):
    DEPTH = "depth"  # diff depth (any speed)
    PARTIAL_DEPTH = "partialDepth"  # depth5/10/20
    BOOK_TICKER = "bookTicker"
    AGG_TRADE = "aggTrade"
    TRADE = "trade"
    KLINE = "kline"
    MARK_PRICE = "markPrice"
    FORCE_ORDER = "forceOrder"
    MINI_TICKER = "miniTicker"
    TICKER = "ticker"
    OTHER = "other"
    SERVER = "server"  # serverShutdown and other connection-level events


class Route(StrEnum):
    PUBLIC = "public"
    MARKET = "market"


PUBLIC_KINDS = frozenset({StreamKind.DEPTH, StreamKind.PARTIAL_DEPTH, StreamKind.BOOK_TICKER})

KLINE_INTERVALS = ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M")

# Diff-depth update speeds (ms) per market; the first is the speed of the bare `@depth` name. USD-M
# `@0ms` is the real-time diff stream (undocumented, but the hftbacktest recordings were made on it).
DEPTH_SPEEDS_MS: dict[Market, tuple[int, ...]] = {Market.SPOT: (1000, 100), Market.FUTURES: (250, 500, 100, 0)}

_NAME = re.compile(r"^[a-z0-9_]+@[A-Za-z0-9_@.:+-]+$|^![A-Za-z]+(?:@[A-Za-z0-9_@]+)?$")
_DEPTH = re.compile(r"^depth(?P<levels>5|10|20)?(?:@(?P<speed>\d+)ms)?$")


@dataclass(frozen=True, slots=True)
class StreamName:
    """A parsed stream name. `symbol` is upper case, None for market-wide (`!...`) streams."""

    name: str
    symbol: str | None
    kind: StreamKind
    speed_ms: int | None = None  # depth, markPrice
    levels: int | None = None  # partial depth
    interval: str | None = None  # kline


def is_valid_name(name: object) -> bool:
    """Syntactically a stream name (what SUBSCRIBE accepts); unknown symbols/streams are still valid."""
    return isinstance(name, str) and 0 < len(name) <= 200 and _NAME.match(name) is not None


def parse_stream(name: str, market: Market) -> StreamName | None:
    """The stream a name denotes on `market`, or None when no such stream exists there."""
    if name.startswith("!"):
        return _parse_market_wide(name, market)
    symbol_part, _, rest = name.partition("@")
    if not symbol_part or not rest or symbol_part != symbol_part.lower():
        return None
    symbol = symbol_part.upper()
    if rest in ("aggTrade", "trade", "bookTicker", "forceOrder", "miniTicker", "ticker"):
        if rest == "forceOrder" and market is not Market.FUTURES:
            return None
        return StreamName(name, symbol, StreamKind(rest))
    if rest.startswith("kline_"):
        interval = rest[len("kline_") :]
        if interval not in KLINE_INTERVALS or (interval == "1s" and market is Market.FUTURES):
            return None
        return StreamName(name, symbol, StreamKind.KLINE, interval=interval)
    if rest.startswith("markPrice"):
        if market is not Market.FUTURES or rest not in ("markPrice", "markPrice@1s"):
            return None
        return StreamName(name, symbol, StreamKind.MARK_PRICE, speed_ms=1000 if rest.endswith("@1s") else 3000)
    return _parse_depth(name, symbol, rest, market)


def _parse_depth(name: str, symbol: str, rest: str, market: Market) -> StreamName | None:
    match = _DEPTH.match(rest)
    if match is None:
        return None
    speeds = DEPTH_SPEEDS_MS[market]
    speed = int(match.group("speed")) if match.group("speed") else speeds[0]
    if match.group("levels"):
        partial_speeds = (1000, 100) if market is Market.SPOT else (250, 500, 100)
        if speed not in partial_speeds:
            return None
        return StreamName(name, symbol, StreamKind.PARTIAL_DEPTH, speed_ms=speed, levels=int(match.group("levels")))
    if speed not in speeds:
        return None
    return StreamName(name, symbol, StreamKind.DEPTH, speed_ms=speed)


def _parse_market_wide(name: str, market: Market) -> StreamName | None:
    if market is Market.FUTURES and name in ("!markPrice@arr", "!markPrice@arr@1s"):
        return StreamName(name, None, StreamKind.MARK_PRICE, speed_ms=1000 if name.endswith("@1s") else 3000)
    if name in ("!miniTicker@arr",):
        return StreamName(name, None, StreamKind.MINI_TICKER)
    if name in ("!ticker@arr",):
        return StreamName(name, None, StreamKind.TICKER)
    if market is Market.FUTURES and name == "!bookTicker":
        return StreamName(name, None, StreamKind.BOOK_TICKER)
    if market is Market.FUTURES and name == "!forceOrder@arr":
        return StreamName(name, None, StreamKind.FORCE_ORDER)
    return None


def kind_of(name: str, market: Market) -> StreamKind:
    parsed = parse_stream(name, market)
    return parsed.kind if parsed is not None else StreamKind.OTHER


def route_of(kind: StreamKind) -> Route:
    return Route.PUBLIC if kind in PUBLIC_KINDS else Route.MARKET


def delivered_on(name: str, market: Market, route: Route | None) -> bool:
    """Whether a connection on `route` receives stream `name`. Spot has no routes; on USD-M a
    connection without a route gets only /public streams (spec §1.1)."""
    if market is Market.SPOT:
        return True
    kind = kind_of(name, market)
    return route_of(kind) is (route or Route.PUBLIC)
