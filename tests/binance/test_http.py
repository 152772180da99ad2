"""The REST layer: signing test vectors of spec §4.3, budgets from headers, 429/418, unknown outcomes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from urllib.parse import parse_qsl

import pytest
from aiohttp import web

from kestrel.binance.http.breaker import CircuitBreaker, CircuitOpen
from kestrel.binance.http.client import BinanceApiError, BinanceHttpClient, UnknownOutcome, with_retries
from kestrel.binance.http.endpoints import FUTURES, SPOT, depth_weight
from kestrel.binance.http.ratelimit import RateLimitTracker
from kestrel.binance.http.signing import encode_params, sign
from kestrel.core.clock import LiveClock, SimClock
from kestrel.core.errors import InsufficientFunds, InvalidOrderError, RateLimited, TemporaryError

M = 60_000_000_000


def test_signing_vectors_from_the_spec() -> None:
    spot = (
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
    )
    assert sign("NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j", spot) == (
        "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    )
    futures = (
        "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC"
        "&recvWindow=5000&timestamp=1591702613943"
    )
    assert sign("2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9", futures) == (
        "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"
    )


def test_parameters_are_encoded_exactly() -> None:
    assert encode_params({"quantity": Decimal("0.0100"), "reduceOnly": True, "price": None}) == (
        "quantity=0.01&reduceOnly=true"
    )
    with pytest.raises(TypeError, match="floats"):
        encode_params({"price": 0.1})


def test_budget_waits_before_the_limit_and_headers_are_authoritative() -> None:
    limits = RateLimitTracker.futures_defaults()
    now = 10 * M + 5_000_000_000
    assert limits.wait_ns(10, 0, now) == 0
    limits.observe_headers({"X-MBX-USED-WEIGHT-1M": "2150", "X-MBX-ORDER-COUNT-10S": "3"}, now)
    assert limits.usage()["weight/60s"] == (2150, 2400)
    assert limits.wait_ns(10, 0, now) == 0  # 2160 ≤ 0.9 × 2400
    wait = limits.wait_ns(20, 0, now)  # 2170 > 2160: wait for the next minute window
    assert wait == 55_000_000_000
    assert limits.wait_ns(20, 0, now + wait) == 0  # a new window
    assert limits.wait_ns(0, 1, now) == 0


def test_429_blocks_and_418_bans() -> None:
    limits = RateLimitTracker.spot_defaults()
    error = limits.observe_rejection(429, 7, 0)
    assert isinstance(error, RateLimited) and not error.banned and error.retry_after_ms == 7000
    assert limits.wait_ns(1, 0, 1_000_000_000) == 6_000_000_000
    ban = limits.observe_rejection(418, 120, 0)
    assert ban.banned
    with pytest.raises(RateLimited, match="418"):
        limits.wait_ns(1, 0, 1)


def test_circuit_breaker_opens_and_half_opens() -> None:
    breaker = CircuitBreaker(threshold=2, reset_after_ns=1000)
    breaker.before_call(0)
    breaker.on_failure(1)
    breaker.before_call(2)
    breaker.on_failure(3)
    with pytest.raises(CircuitOpen):
        breaker.before_call(500)
    breaker.before_call(1003)  # half-open trial
    breaker.on_failure(1004)  # trial failed: open again
    with pytest.raises(CircuitOpen):
        breaker.before_call(1005)
    breaker.before_call(2004)
    breaker.on_success()
    assert not breaker.is_open


def test_depth_weights() -> None:
    assert [depth_weight(False, n) for n in (100, 500, 1000, 5000)] == [5, 25, 50, 250]
    assert [depth_weight(True, n) for n in (50, 100, 500, 1000)] == [2, 5, 10, 20]


SECRET = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"


class Exchange:
    """A protocol-level peer on loopback: verifies key and signature like the exchange, then answers
    as scripted (the full simulator covers behaviour; this isolates the client's protocol handling)."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, object], dict[str, str]]] = []
        self.requests: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        query = request.query_string
        params = dict(parse_qsl(query))
        self.requests.append(params)
        if request.headers.get("X-MBX-APIKEY") != "key":
            return web.json_response({"code": -2015, "msg": "Invalid API-key"}, status=401)
        payload, _, signature = query.rpartition("&signature=")
        if sign(SECRET, payload) != signature or not query.endswith(signature):
            return web.json_response({"code": -1022, "msg": "Signature invalid"}, status=400)
        status, body, headers = self.script.pop(0) if self.script else (200, {"ok": True}, {})
        if status == 0:
            await asyncio.sleep(1)
        return web.json_response(body, status=status, headers=headers)


@pytest.fixture
async def exchange() -> AsyncIterator[tuple[Exchange, str]]:
    peer = Exchange()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", peer.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield peer, f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_signed_order_and_error_mapping(exchange: tuple[Exchange, str]) -> None:
    peer, url = exchange
    peer.script = [
        (200, {"orderId": 1, "status": "NEW"}, {"X-MBX-USED-WEIGHT-1M": "11", "X-MBX-ORDER-COUNT-10S": "1"}),
        (400, {"code": -2019, "msg": "Margin is insufficient."}, {}),
        (400, {"code": -4164, "msg": "Order's notional must be no smaller than 100"}, {}),
        (400, {"code": -1121, "msg": "Invalid symbol."}, {}),
        (503, {"code": -1000, "msg": "Unknown error, please check your request or try again later."}, {}),
        (429, {"code": -1003, "msg": "Too many requests"}, {"Retry-After": "3"}),
    ]
    async with BinanceHttpClient(url, LiveClock(), "key", SECRET, limits=RateLimitTracker.futures_defaults()) as client:
        order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": Decimal("0.002"),
                 "price": Decimal("67000.1"), "timeInForce": "GTC", "newClientOrderId": "kstabc"}  # fmt: skip
        assert await client.call(FUTURES["new_order"], order) == {"orderId": 1, "status": "NEW"}
        assert peer.requests[0]["quantity"] == "0.002" and "signature" in peer.requests[0]
        assert client.limits.usage()["orders/10s"] == (1, 300)
        with pytest.raises(InsufficientFunds) as funds:
            await client.call(FUTURES["new_order"], order)
        assert funds.value.code == -2019
        with pytest.raises(InvalidOrderError) as notional:
            await client.call(FUTURES["new_order"], order)
        assert notional.value.code == -4164
        with pytest.raises(BinanceApiError) as symbol:
            await client.call(FUTURES["query_order"], {"symbol": "NOPE", "origClientOrderId": "x"})
        assert symbol.value.code == -1121
        with pytest.raises(UnknownOutcome):  # 5xx on a write: never assume it failed
            await client.call(FUTURES["new_order"], order)
        with pytest.raises(RateLimited) as limited:
            await client.call(FUTURES["open_orders"], {})
        assert limited.value.retry_after_ms == 3000


async def test_bad_credentials_and_timeouts(exchange: tuple[Exchange, str]) -> None:
    peer, url = exchange
    async with BinanceHttpClient(url, LiveClock(), "key", "wrong-secret") as client:
        with pytest.raises(BinanceApiError) as bad:
            await client.call(SPOT["account"])
        assert bad.value.code == -1022
    peer.script = [(0, {}, {})]
    async with BinanceHttpClient(url, LiveClock(), "key", SECRET, timeout_ms=300) as client:
        with pytest.raises(UnknownOutcome, match="no answer"):
            await client.call(SPOT["new_order"], {"symbol": "BTCUSDT"})


async def test_retry_helper_retries_reads_only() -> None:
    calls = {"n": 0}

    async def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise TemporaryError("503")
        return "ok"

    assert await with_retries(flaky, base_delay_s=0.001) == "ok" and calls["n"] == 3

    async def unknown() -> str:
        calls["n"] += 1
        raise UnknownOutcome("5xx on a write")

    calls["n"] = 0
    with pytest.raises(UnknownOutcome):
        await with_retries(unknown, base_delay_s=0.001)
    assert calls["n"] == 1  # never resent


def test_sim_clock_drives_the_budget() -> None:
    clock = SimClock(5 * M)
    limits = RateLimitTracker.futures_defaults()
    limits.consume(2159, 0, clock.timestamp_ns())
    assert limits.wait_ns(1, 0, clock.timestamp_ns()) == 0
    assert limits.wait_ns(2, 0, clock.timestamp_ns()) == M
