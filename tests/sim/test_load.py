"""The full USD-M market: 300 symbols × (bookTicker, aggTrade, depth@100ms) over sharded connections."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
import orjson

from kestrel.core.clock import LiveClock
from kestrel.core.enums import Market
from tests.sim.conftest import SimFactory

STREAMS_PER_CONNECTION = 100


async def test_three_hundred_symbols_start_connect_and_stream(make_sim: SimFactory) -> None:
    clock = LiveClock()
    started = clock.monotonic_ns()
    async with make_sim(symbols=300, markets=(Market.FUTURES,), seed=11) as sim, aiohttp.ClientSession() as session:
        start_up_s = (clock.monotonic_ns() - started) / 1e9
        assert start_up_s < 20.0, start_up_s
        names = [symbol.lower() for symbol in sim.symbols(Market.FUTURES)]
        public = [f"{name}@{kind}" for name in names for kind in ("bookTicker", "depth@100ms")]
        market = [f"{name}@aggTrade" for name in names]
        shards = [("/public", public[i : i + STREAMS_PER_CONNECTION]) for i in range(0, len(public), 100)]
        shards += [("/market", market[i : i + STREAMS_PER_CONNECTION]) for i in range(0, len(market), 100)]
        connections = [
            await session.ws_connect(f"{sim.ws_url}{route}/stream?streams={'/'.join(streams)}", max_msg_size=0)
            for route, streams in shards
        ]
        assert len(connections) == 9
        await sim.wait_for_subscribers(Market.FUTURES, streams=900, timeout_s=10)
        seen: Counter[str] = Counter()

        async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 4.0
            while (left := deadline - loop.time()) > 0:
                try:
                    message = await ws.receive(timeout=left)
                except TimeoutError:
                    return
                seen[orjson.loads(message.data)["stream"]] += 1

        await asyncio.gather(*(read(ws) for ws in connections))
        for ws in connections:
            assert not ws.closed
            await ws.close()
        stats = sim.stats()
    missing_tickers = [name for name in names if seen[f"{name}@bookTicker"] == 0]
    missing_depth = [name for name in names if seen[f"{name}@depth@100ms"] == 0]
    assert not missing_tickers and not missing_depth
    assert sum(1 for name in names if seen[f"{name}@aggTrade"]) > 200  # the quietest trade ~0.2/s
    assert stats["connections"]["opened"] == 9
    assert stats["total"]["messages_sent"] >= sum(seen.values())
