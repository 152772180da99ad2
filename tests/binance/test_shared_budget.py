"""The request-weight / order-count budget shared through Redis (R-EX-4): two clients on one API key
never together pass it; without Redis each client only knows its own share."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from kestrel.binance.http.ratelimit import RateLimitTracker
from kestrel.binance.http.shared_budget import SharedBudget, budget_scopes
from kestrel.binance.venue import BinanceVenue
from kestrel.binance.venue_settings import BinanceVenueSettings
from kestrel.config.loading import load_config
from kestrel.core.clock import LiveClock
from kestrel.core.enums import Market
from kestrel.core.errors import ConfigurationError, RateLimited, TemporaryError
from kestrel.sim import ProtocolLimits
from tests.binance.budget_worker import hammer
from tests.binance.venue_sim_helpers import KEY, trading_sim, venue_settings

FUT = Market.FUTURES
NANOS_PER_SECOND = 1_000_000_000


def weight_only(limit: int) -> RateLimitTracker:
    return RateLimitTracker.from_exchange_info(
        [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": limit}]
    )


async def test_two_budgets_racing_for_the_last_units_never_pass_the_cap(redis_url: str) -> None:
    namespace = budget_scopes("http://127.0.0.1:1", KEY, "futures")
    first, second = (SharedBudget(redis_url, namespace, weight_only(100)) for _ in range(2))
    now = LiveClock().timestamp_ns()
    now -= now % (60 * NANOS_PER_SECOND) - NANOS_PER_SECOND  # one second into a minute: no roll below
    try:
        answers = await asyncio.gather(*(budget.reserve(1, 0, now) for budget in (first, second) * 60))
        assert answers.count(0) == 90  # 0.9 × 100, split between the two however the race went
        assert all(wait == 59 * NANOS_PER_SECOND for wait in answers if wait)  # the rest wait for the next minute
        assert (await first.used(now))["weight/60s"] == 90
        # the exchange reports more than we counted (someone else on this IP): everyone believes it
        later = now + NANOS_PER_SECOND
        await first.observe_headers({"X-MBX-USED-WEIGHT-1M": "95", "Content-Type": "x"}, later)
        assert (await second.used(later))["weight/60s"] == 95
        # a 429 seen by one blocks the other until Retry-After; a 418 stops it
        await first.observe_rejection(False, later + 2 * NANOS_PER_SECOND, later)
        assert await second.reserve(0, 0, later) >= NANOS_PER_SECOND
        await first.observe_rejection(True, later + 5 * NANOS_PER_SECOND, later)
        with pytest.raises(RateLimited) as banned:
            await second.reserve(0, 0, later)
        assert banned.value.banned
    finally:
        await first.close()
        await second.close()


async def test_an_unreachable_redis_refuses_the_request() -> None:
    budget = SharedBudget(
        "redis://127.0.0.1:1/0", budget_scopes("http://127.0.0.1:1", KEY, "futures"), weight_only(100)
    )
    try:
        with pytest.raises(TemporaryError, match="shared rate-limit budget unavailable"):
            await budget.reserve(1, 0, LiveClock().timestamp_ns())
    finally:
        await budget.close()


@pytest.mark.slow
@pytest.mark.parametrize("shared", [True, False], ids=["redis", "in-process"])
async def test_two_venues_on_one_key_share_the_weight_budget(shared_data: Path, redis_url: str, shared: bool) -> None:
    limit = 400
    clock = LiveClock()
    seconds_into_minute = (clock.timestamp_ns() // NANOS_PER_SECOND) % 60
    if seconds_into_minute > 45:  # the whole test inside one minute window of the clients and the simulator
        await asyncio.sleep(61 - seconds_into_minute)
    limits = ProtocolLimits(weight_per_minute_futures=limit, requests_over_limit_before_ban=1000)
    async with trading_sim(shared_data, markets=(FUT,), limits=limits) as sim:
        changes = {"futures_weight_per_minute": limit, "shared_budget_redis_url": redis_url if shared else None}
        venues = [BinanceVenue(venue_settings(sim, (FUT,), **changes), clock) for _ in range(2)]  # type: ignore[arg-type]
        for venue in venues:
            await venue.start()
        try:
            # each hammers the simulator with as much as the whole budget (openOrders + openAlgoOrders: 2 each)
            burst = [asyncio.create_task(v.rest[FUT].open_orders("BTCUSDT")) for v in venues for _ in range(limit // 2)]
            await asyncio.sleep(2.0)
            pending = [task for task in burst if not task.done()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*burst, return_exceptions=True)
            stats = sim.stats()["rest"]
            if shared:
                assert pending, "requests past the shared budget must wait for the next window"
                refused = [t.exception() for t in burst if t not in pending and t.exception() is not None]
                assert refused == []
                assert sim.state.weights[FUT].used <= limit * 0.9
                assert stats["rate_limited_429"] == 0 and stats["banned_418"] == 0
                assert venues[0].http[FUT].shared is not None
                counted = await venues[0].http[FUT].shared.used(clock.timestamp_ns())
                assert counted["weight/60s"] >= sim.state.weights[FUT].used  # Redis saw every request
            else:  # each alone keeps to its own 90 %: together they go over and the exchange refuses
                assert stats["rate_limited_429"] > 0
        finally:
            for venue in venues:
                await venue.stop(timeout_s=1.0)


@pytest.mark.slow
async def test_two_processes_on_one_key_never_together_pass_the_budget(shared_data: Path, redis_url: str) -> None:
    limit = 300
    seconds_into_minute = (LiveClock().timestamp_ns() // NANOS_PER_SECOND) % 60
    if seconds_into_minute > 45:  # both bursts inside one minute window of the clients
        await asyncio.sleep(61 - seconds_into_minute)
    limits = ProtocolLimits(weight_per_minute_futures=limit, requests_over_limit_before_ban=1000)
    async with trading_sim(shared_data, markets=(FUT,), limits=limits) as sim:
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.binance.budget_worker", sim.rest_url, redis_url, str(limit), "4",
            stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).parents[2],
        )  # fmt: skip
        here = await hammer(sim.rest_url, redis_url, limit, 4.0)
        output, _ = await asyncio.wait_for(worker.communicate(), 60)
        assert worker.returncode == 0
        there = json.loads(output.decode().strip().splitlines()[-1])
        stats = sim.stats()["rest"]
        used = sim.state.weights[FUT].used
    # each process alone would have taken 90 % of the budget; together they took at most that
    assert 2 * (here["answered"] + there["answered"]) <= int(limit * 0.9)
    assert here["waiting"] > 0 and there["waiting"] > 0, (here, there)
    assert here["refused"] == there["refused"] == 0
    assert used <= limit * 0.9
    assert stats["rate_limited_429"] == 0 and stats["banned_418"] == 0


def test_a_shared_budget_url_that_is_not_redis_is_refused_at_configuration() -> None:
    with pytest.raises(ConfigurationError, match="shared_budget_redis_url"):
        load_config(
            None,
            overrides={"environment": "dev", "venue": {"shared_budget_redis_url": "http://127.0.0.1:6379"}},
            env_file=None,
        )
    with pytest.raises(ConfigurationError, match="redis://"):
        SharedBudget("127.0.0.1:6379", budget_scopes("http://127.0.0.1:1", KEY, "futures"), weight_only(100))
    config = load_config(None, overrides={"environment": "dev", "venue": {"shared_budget_redis_url": "redis://127.0.0.1:6379/0"}},
                         env_file=None)  # fmt: skip
    settings = BinanceVenueSettings.from_config(config.venue, markets=(FUT,))
    assert settings.shared_budget_redis_url == "redis://127.0.0.1:6379/0"


async def test_order_counts_are_shared_too(redis_url: str) -> None:
    namespace = budget_scopes("http://127.0.0.1:1", KEY, "futures")
    first, second = (SharedBudget(redis_url, namespace, RateLimitTracker.futures_defaults()) for _ in range(2))
    now = LiveClock().timestamp_ns()
    now -= now % (60 * NANOS_PER_SECOND) - NANOS_PER_SECOND
    try:
        # futures: 300 orders / 10 s (cap 270) and 1200 / minute; a new order costs no weight
        answers = await asyncio.gather(*(budget.reserve(0, 1, now) for budget in (first, second) * 150))
        assert answers.count(0) == 270
        assert all(wait == 9 * NANOS_PER_SECOND for wait in answers if wait)  # the 10 s window's end
        assert await first.used(now) == {"weight/60s": 0, "orders/60s": 270, "orders/10s": 270}
        # the exchange's order count header raises the shared figure for both
        await second.observe_headers({"X-MBX-ORDER-COUNT-1M": "400"}, now)
        assert (await first.used(now))["orders/60s"] == 400
    finally:
        await first.close()
        await second.close()


def test_weight_is_shared_per_endpoint_and_order_counts_per_key() -> None:
    first = budget_scopes("https://fapi.binance.com", "key-one", "futures")
    second = budget_scopes("https://fapi.binance.com", "key-two", "futures")
    assert first.weight == second.weight  # request weight is the IP's, whatever the key
    assert first.orders != second.orders and "key-one" not in first.orders  # orders: the account's
    assert budget_scopes("https://api.binance.com", "key-one", "spot").weight != first.weight
