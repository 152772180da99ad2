"""Public market-data REST calls of one market (spec §5.1–5.3), on the shared `BinanceHttpClient`.

Request weights are tracked by the client's `RateLimitTracker` (the exchange's `X-MBX-USED-WEIGHT`
headers are authoritative), so snapshot bursts wait for budget instead of earning a 429.

The REST top of book (the fallback while a stream connection is down) uses `GET depth?limit=5`: it
exists on both markets, costs the least weight, and carries `lastUpdateId`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from kestrel.binance.http.client import BinanceHttpClient
from kestrel.binance.http.endpoints import FUTURES, SPOT, depth_weight
from kestrel.binance.http.ratelimit import RateLimitTracker
from kestrel.binance.schemas.exchange_info import parse_exchange_info
from kestrel.binance.schemas.market import WireDepthSnapshot, parse_depth_snapshot
from kestrel.core.clock import Clock
from kestrel.core.enums import Market
from kestrel.core.errors import DataError
from kestrel.core.events import BookTicker, DepthSnapshot, QualityFlag
from kestrel.core.instrument import Instrument

_FROM_REST = int(QualityFlag.FROM_REST)


class MarketDataRest:
    """GET time, exchangeInfo, depth for one market."""

    def __init__(self, market: Market, base_url: str, clock: Clock, timeout_ms: int = 10_000) -> None:
        self.market = market
        self.clock = clock
        self.endpoints = FUTURES if market is Market.FUTURES else SPOT
        limits = RateLimitTracker.futures_defaults() if market is Market.FUTURES else RateLimitTracker.spot_defaults()
        self.http = BinanceHttpClient(base_url, clock, timeout_ms=timeout_ms, limits=limits)

    async def close(self) -> None:
        await self.http.close()

    async def server_time(self) -> tuple[int, float, float]:
        """(serverTime ms, local send ms, local receive ms) of one round trip."""
        sent = self.clock.timestamp_ns() / 1e6
        body = await self.http.call(self.endpoints["time"])
        received = self.clock.timestamp_ns() / 1e6
        try:
            return int(body["serverTime"]), sent, received
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{self.market.value} time: unexpected body {str(body)[:80]!r}") from None

    async def exchange_info(self) -> tuple[list[Instrument], dict[str, Any]]:
        """Every instrument of the market, and the raw body (rate limits, server time...)."""
        body = await self.http.call(self.endpoints["exchange_info"])
        if not isinstance(body, dict) or "symbols" not in body:
            raise DataError(f"{self.market.value} exchangeInfo: unexpected body")
        return parse_exchange_info(body, self.market), body

    async def depth_snapshot(self, symbol: str, limit: int) -> DepthSnapshot:
        endpoint = self.endpoints["depth"]
        futures = self.market is Market.FUTURES
        body = await self.http.call(endpoint, {"symbol": symbol, "limit": limit}, weight=depth_weight(futures, limit))
        ts_init = self.clock.timestamp_ns()
        try:
            wire = msgspec.convert(body, WireDepthSnapshot, strict=False)
        except msgspec.ValidationError as exc:
            raise DataError(f"{self.market.value} depth {symbol}: {exc}") from None
        return parse_depth_snapshot(wire, self.market, symbol, ts_init)

    async def top_of_book(self, symbol: str) -> BookTicker:
        """Best bid and ask from a 5-level snapshot, flagged FROM_REST."""
        snapshot = await self.depth_snapshot(symbol, 5)
        if not snapshot.bids or not snapshot.asks:
            raise DataError(f"{self.market.value} depth {symbol}: empty book")
        (bid, bid_qty), (ask, ask_qty) = snapshot.bids[0], snapshot.asks[0]
        return BookTicker(
            self.market,
            symbol,
            snapshot.last_update_id,
            bid,
            bid_qty,
            ask,
            ask_qty,
            snapshot.ts_event,
            snapshot.ts_init,
            _FROM_REST,
        )
