"""Helpers for the trading half: a simulator with accounts, a signed client (our own signing), user
streams over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import ROUND_UP, Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from kestrel.binance.http.signing import encode_params, sign
from kestrel.core.enums import Market
from kestrel.sim import MarketSimulator, RateModel, SimulatorOptions
from kestrel.sim.trading.options import SimAccount, TradingOptions

KEY = "A" * 64
SECRET = "S" * 64
OTHER_KEY = "B" * 64
OTHER_SECRET = "T" * 64
ACCOUNTS = [
    SimAccount(name="alice", api_key=KEY, api_secret=SECRET),
    SimAccount(name="bob", api_key=OTHER_KEY, api_secret=OTHER_SECRET),
]
# a market that barely moves: a test controls what the book does
QUIET = RateModel(book_events_per_s_major=0.001, book_events_per_s_min=0.001, trades_per_s_major=0, trades_per_s_min=0)
# a lively one: trades through the book quickly
BUSY = RateModel(book_events_per_s_major=80, trades_per_s_major=40, trades_per_s_min=10, activity_exponent=0.0)

SimFactory = Callable[..., Any]


@pytest.fixture
def make_trading_sim(shared_data: Path) -> SimFactory:
    """`async with make_trading_sim(rates=QUIET, ...) as sim:` — BTCUSDT and ETHUSDT, spot and USD-M."""

    @asynccontextmanager
    async def factory(**values: Any) -> AsyncIterator[MarketSimulator]:
        values.setdefault("data_dir", shared_data)
        values.setdefault("symbols", ["BTCUSDT", "ETHUSDT"])
        trading = values.pop("trading", {})
        trading.setdefault("accounts", ACCOUNTS)
        values["trading"] = TradingOptions(**trading)
        async with MarketSimulator(SimulatorOptions(**values)) as sim:
            yield sim

    return factory


class SignedClient:
    """A minimal Binance REST client signing with `kestrel.binance.http.signing` (params in the query
    string, or in the form body with `in_body=True`)."""

    def __init__(
        self, session: aiohttp.ClientSession, sim: MarketSimulator, key: str = KEY, secret: str = SECRET
    ) -> None:
        self.session = session
        self.sim = sim
        self.key = key
        self.secret = secret

    async def call(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        signed: bool = True,
        in_body: bool = False,
        timestamp_ms: int | None = None,
        key: str | None = None,
        secret: str | None = None,
    ) -> tuple[int, Any, Any]:
        values = dict(params or {})
        if signed:
            values["timestamp"] = timestamp_ms if timestamp_ms is not None else self.sim.server_time_ms()
        text = encode_params(values)
        if signed:
            text = f"{text}&signature={sign(secret or self.secret, text)}"
        headers = {"X-MBX-APIKEY": key if key is not None else self.key}
        url = f"{self.sim.rest_url}{path}"
        if in_body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            request = self.session.request(method, url, data=text, headers=headers)
        else:
            request = self.session.request(method, f"{url}?{text}" if text else url, headers=headers)
        async with request as response:
            raw = await response.read()
            return response.status, orjson.loads(raw) if raw else None, response.headers

    async def ok(self, method: str, path: str, params: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        status, body, _ = await self.call(method, path, params, **kwargs)
        assert status == 200, (status, body)
        return body


@asynccontextmanager
async def client(sim: MarketSimulator, key: str = KEY, secret: str = SECRET) -> AsyncIterator[SignedClient]:
    async with aiohttp.ClientSession() as session:
        yield SignedClient(session, sim, key, secret)


class UserStream:
    """A user-data WebSocket; collects events in order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []

    async def next(
        self, kind: str | None = None, timeout: float = 5.0, where: Callable[[Any], bool] | None = None
    ) -> Any:
        """The next event (of `kind`, matching `where`), skipping others (they stay in `events`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"no {kind} event within {timeout}s; got {[e.get('e') for e in self.events]}")
            message = await self.ws.receive(timeout=remaining)
            assert message.type is aiohttp.WSMsgType.TEXT, message
            event = orjson.loads(message.data)
            self.events.append(event)
            body = event.get("data", event) if isinstance(event, dict) and "stream" in event else event
            if (kind is None or body.get("e") == kind) and (where is None or where(body)):
                return body

    async def quiet(self, seconds: float) -> list[Any]:
        """Everything that arrives within `seconds`."""
        received = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (remaining := deadline - loop.time()) > 0:
            try:
                message = await self.ws.receive(timeout=remaining)
            except TimeoutError:
                break
            if message.type is aiohttp.WSMsgType.TEXT:
                received.append(orjson.loads(message.data))
        return received


@asynccontextmanager
async def user_stream(url: str) -> AsyncIterator[UserStream]:
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        yield UserStream(ws)


def spot_stream_url(sim: MarketSimulator, key: str) -> str:
    return f"{sim.ws_url}/ws/{key}"


def futures_stream_url(sim: MarketSimulator, key: str) -> str:
    return f"{sim.futures_ws_url}/private/ws/{key}"


def quantity_for(notional: Decimal, price: Decimal, step: Decimal) -> Decimal:
    """The smallest multiple of `step` worth at least `notional` at `price`."""
    return ((notional / price) / step).to_integral_value(rounding=ROUND_UP) * step


def best(sim: MarketSimulator, market: Market, symbol: str = "BTCUSDT") -> tuple[Decimal, Decimal]:
    book = sim.book(market, symbol)
    assert book.best_bid is not None and book.best_ask is not None
    return book.best_bid[0], book.best_ask[0]
