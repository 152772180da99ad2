"""A second process for the shared-budget test: fires as much request weight as the whole budget at the
simulator through a `BinanceHttpClient` whose budget is shared in Redis, waits `seconds`, and prints one
JSON line {"answered": n, "waiting": m, "refused": k}.

    python -m tests.binance.budget_worker <rest_url> <redis_url> <weight_limit> <seconds>
"""

from __future__ import annotations

import asyncio
import json
import sys

from kestrel.binance.http.client import BinanceHttpClient
from kestrel.binance.http.ratelimit import RateLimitTracker
from kestrel.binance.http.shared_budget import SharedBudget, budget_scopes
from kestrel.binance.venue_rest import MarketRest
from kestrel.core.clock import LiveClock
from kestrel.core.enums import Market
from tests.binance.venue_sim_helpers import KEY, SECRET


async def hammer(rest_url: str, redis_url: str | None, limit: int, seconds: float) -> dict[str, int]:
    """`limit // 2` openOrders reads (2 weight each: openOrders + openAlgoOrders) at once."""
    clock = LiveClock()
    tracker = RateLimitTracker.futures_defaults(limit)
    shared = SharedBudget(redis_url, budget_scopes(rest_url, KEY, "futures"), tracker) if redis_url else None
    http = BinanceHttpClient(rest_url, clock, KEY, SECRET, limits=tracker, shared=shared)
    rest = MarketRest(Market.FUTURES, http, clock)
    tasks = [asyncio.create_task(rest.open_orders("BTCUSDT")) for _ in range(limit // 2)]
    try:
        done, pending = await asyncio.wait(tasks, timeout=seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        refused = sum(1 for task in done if task.exception() is not None)
        return {"answered": len(done) - refused, "waiting": len(pending), "refused": refused}
    finally:
        await http.close()


if __name__ == "__main__":
    url, redis, weight_limit, wait_s = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    print(json.dumps(asyncio.run(hammer(url, redis, weight_limit, wait_s))))
