"""The simulator's trading half: order round trips over real sockets, and what feeding the matching
engine costs the market simulation.

1. REST round trips: signed `POST /fapi/v1/order` (a resting limit) + `DELETE /fapi/v1/order`, one
   client sequentially, then `--clients` concurrent clients; orders/s and latency percentiles, with a
   user-data stream connected (so every order also produces its ORDER_TRADE_UPDATEs).
2. Market feed: the synthetic market advanced over `--market-seconds` of exchange time at a busy rate,
   with the traded symbols active in the engine (every book change, trade and mark applied to it) and
   without trading; synthetic events/s both ways.

    ./dev run python benchmarks/sim_trading.py [--orders 300] [--clients 8] [--market-seconds 120]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from decimal import ROUND_UP, Decimal
from typing import Any

import aiohttp

from kestrel.binance.http.signing import encode_params, sign
from kestrel.config.paths import shared_data_dir
from kestrel.core.enums import Market
from kestrel.sim import MarketSimulator, RateModel, SimulatorOptions
from kestrel.sim.trading.options import OrderRateLimits, SimAccount, TradingOptions

KEY, SECRET = "A" * 64, "S" * 64
QUIET = RateModel(book_events_per_s_major=0.001, book_events_per_s_min=0.001, trades_per_s_major=0, trades_per_s_min=0)
BUSY = RateModel(book_events_per_s_major=200, trades_per_s_major=50, activity_exponent=0.0)
FUTURES = Market.FUTURES


def _options(rates: RateModel, symbols: list[str], trading: bool = True) -> SimulatorOptions:
    limits = OrderRateLimits(futures_per_10s=1_000_000, futures_per_minute=1_000_000)
    return SimulatorOptions(
        markets=(FUTURES,),
        symbols=symbols,
        rates=rates,
        data_dir=shared_data_dir(),
        trading=TradingOptions(
            enabled=trading, accounts=[SimAccount(api_key=KEY, api_secret=SECRET)], order_limits=limits
        ),
    )


async def _call(
    session: aiohttp.ClientSession, sim: MarketSimulator, method: str, path: str, params: dict[str, Any]
) -> Any:
    text = encode_params({**params, "timestamp": sim.server_time_ms()})
    url = f"{sim.rest_url}{path}?{text}&signature={sign(SECRET, text)}"
    async with session.request(method, url, headers={"X-MBX-APIKEY": KEY}) as response:
        body = await response.json()
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: {response.status} {body}")
        return body


async def _round_trips(sim: MarketSimulator, count: int, price: Decimal, quantity: Decimal) -> list[float]:
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            started = time.perf_counter()
            order = await _call(
                session,
                sim,
                "POST",
                "/fapi/v1/order",
                {
                    "symbol": "BTCUSDT",
                    "side": "BUY",
                    "type": "LIMIT",
                    "timeInForce": "GTC",
                    "price": price,
                    "quantity": quantity,
                },
            )
            await _call(session, sim, "DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": order["orderId"]})
            latencies.append(time.perf_counter() - started)
    return latencies


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
    }


async def rest_benchmark(orders: int, clients: int) -> dict[str, Any]:
    async with MarketSimulator(_options(QUIET, ["BTCUSDT"])) as sim:
        book = sim.book(FUTURES, "BTCUSDT")
        assert book.best_bid is not None
        price = book.best_bid[0] - 50 * Decimal("0.1")
        quantity = ((Decimal(150) / price) / Decimal("0.001")).to_integral_value(rounding=ROUND_UP) * Decimal("0.001")
        async with aiohttp.ClientSession() as session:
            key = await session.post(f"{sim.rest_url}/fapi/v1/listenKey", headers={"X-MBX-APIKEY": KEY})
            listen_key = (await key.json())["listenKey"]
            async with session.ws_connect(f"{sim.futures_ws_url}/private/ws/{listen_key}") as stream:
                received = 0

                async def drain() -> None:
                    nonlocal received
                    async for _ in stream:
                        received += 1

                reader = asyncio.create_task(drain())
                await _round_trips(sim, 20, price, quantity)  # warm-up (numba kernels, connections)
                started = time.perf_counter()
                sequential = await _round_trips(sim, orders, price, quantity)
                sequential_s = time.perf_counter() - started
                started = time.perf_counter()
                batches = await asyncio.gather(
                    *(_round_trips(sim, orders // clients, price, quantity) for _ in range(clients))
                )
                concurrent_s = time.perf_counter() - started
                await asyncio.sleep(0.2)
                reader.cancel()
        concurrent = [latency for batch in batches for latency in batch]
        return {
            "sequential": {
                "round_trips": orders,
                "round_trips_per_s": round(orders / sequential_s, 1),
                **_percentiles(sequential),
            },
            "concurrent": {
                "clients": clients,
                "round_trips": len(concurrent),
                "round_trips_per_s": round(len(concurrent) / concurrent_s, 1),
                **_percentiles(concurrent),
            },
            "user_events_received": received,
        }


def market_benchmark(market_seconds: float) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for label, trading in (("without_trading", False), ("with_traded_symbols_active", True)):
        simulator = MarketSimulator(_options(BUSY, ["BTCUSDT", "ETHUSDT"], trading=trading))
        origin = 1_767_225_600_000_000_000
        simulator.source.start(origin)
        if simulator.trading is not None:
            for symbol in ("BTCUSDT", "ETHUSDT"):
                simulator.trading.activate(FUTURES, symbol, origin)
        simulator.source.advance(origin + 1_000_000_000)  # warm-up
        started = time.perf_counter()
        processed = simulator.source.advance(origin + int(market_seconds * 1e9))
        elapsed = time.perf_counter() - started
        entry: dict[str, Any] = {"synthetic_events": processed, "events_per_s": round(processed / elapsed)}
        if simulator.trading is not None:
            entry["engine_events_applied"] = simulator.trading.bridge.events_applied
        results[label] = entry
    with_trading = results["with_traded_symbols_active"]["events_per_s"]
    results["slowdown"] = round(results["without_trading"]["events_per_s"] / with_trading, 2)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--market-seconds", type=float, default=120.0)
    args = parser.parse_args()
    result = {
        "benchmark": "sim_trading",
        "rest": asyncio.run(rest_benchmark(args.orders, args.clients)),
        "market_feed": market_benchmark(args.market_seconds),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
