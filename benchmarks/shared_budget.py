"""Shared rate-limit budget: what reserving a request's cost in Redis adds to each REST call.

Times `SharedBudget.reserve` (one Lua script over the weight and both order-count windows) one call
after another and with `--concurrency` calls in flight, against the in-process `RateLimitTracker`
check alone. The limits are set high enough that nothing waits. Needs Redis (`--redis`, default
redis://127.0.0.1:6379/15; the benchmark's keys expire on their own). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from kestrel.binance.http.ratelimit import RateLimitTracker
from kestrel.binance.http.shared_budget import SharedBudget, budget_scopes
from kestrel.core.clock import LiveClock


async def measure(redis_url: str, calls: int, concurrency: int) -> dict[str, object]:
    clock = LiveClock()
    tracker = RateLimitTracker.futures_defaults(weight_per_minute=10**9)
    for window in tracker.windows.values():
        window.limit = 10**9
    budget = SharedBudget(redis_url, budget_scopes(f"http://bench-{clock.timestamp_ns()}", "bench", "futures"), tracker)
    try:
        await budget.reserve(1, 1, clock.timestamp_ns())  # connect, load the script
        latencies = []
        for _ in range(calls):
            started = time.perf_counter_ns()
            await budget.reserve(1, 1, clock.timestamp_ns())
            latencies.append(time.perf_counter_ns() - started)
        started = time.perf_counter_ns()
        for start in range(0, calls, concurrency):
            batch = range(start, min(calls, start + concurrency))
            await asyncio.gather(*(budget.reserve(1, 1, clock.timestamp_ns()) for _ in batch))
        concurrent_s = (time.perf_counter_ns() - started) / 1e9
    finally:
        await budget.close()
    local = []
    for _ in range(calls):
        started = time.perf_counter_ns()
        now = clock.timestamp_ns()
        tracker.wait_ns(1, 1, now)
        tracker.consume(1, 1, now)
        local.append(time.perf_counter_ns() - started)
    latencies.sort()
    return {
        "benchmark": "shared_budget",
        "calls": calls,
        "redis_reserve_us_median": round(statistics.median(latencies) / 1000, 1),
        "redis_reserve_us_p99": round(latencies[int(len(latencies) * 0.99) - 1] / 1000, 1),
        "redis_reserves_per_s_concurrent": round(calls / concurrent_s),
        "concurrency": concurrency,
        "in_process_check_us_median": round(statistics.median(local) / 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    arguments = parser.parse_args()
    print(json.dumps(asyncio.run(measure(arguments.redis, arguments.calls, arguments.concurrency))))


if __name__ == "__main__":
    main()
