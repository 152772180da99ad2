"""The simulator's lockstep mode (kestrel.sim.lockstep) spoken by a bare client over real sockets: one
step at a time, nothing published before the ack, orders stamped at the step's time + entry latency and
answered a response latency after that; refusals say what is wrong."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from kestrel.backtest.lockstep import lockstep_plan
from kestrel.backtest.setup import BacktestRequest
from kestrel.binance.http.signing import signed_query
from kestrel.config.loading import load_config
from kestrel.config.models import KestrelConfig
from kestrel.core.enums import Market
from kestrel.core.errors import ConfigurationError
from kestrel.core.events import NANOS_PER_MILLI
from kestrel.sim import MarketSimulator, SimulatorOptions
from kestrel.sim.lockstep import CONTROL_PATH, LockstepPlan
from kestrel.sim.trading.options import SimAccount, TradingOptions

RECORDING = "hftbacktest/usdm/btcusdt_20240718.gz"
FIRST_MS = 1721347020984  # the recording's first receive time (SOURCES.md)
KEY = "LockstepSimKey0123456789"
SECRET = "LockstepSimSecret0123456789abcdef"
ENTRY_MS, RESPONSE_MS = 30, 20


def config(feed: dict[str, Any] | None = None) -> KestrelConfig:
    matching = {
        "feed_latency": feed or {"model": "constant", "constant_ms": 5.0},
        "order_entry_latency": {"model": "constant", "constant_ms": ENTRY_MS},
        "order_response_latency": {"model": "constant", "constant_ms": RESPONSE_MS},
    }
    return load_config(None, overrides={"environment": "dev", "matching": matching}, env_file=None)


def plan_for(shared_data: Path, seconds: int = 10, feed: dict[str, Any] | None = None) -> LockstepPlan:
    request = BacktestRequest(
        "market_maker", [shared_data / RECORDING], config(feed), ["BTCUSDT"], {"symbol": "BTCUSDT"},
        end_ns=(FIRST_MS + seconds * 1000) * NANOS_PER_MILLI,
    )  # fmt: skip
    return lockstep_plan(request, "alice")


def options(shared_data: Path) -> SimulatorOptions:
    return SimulatorOptions(
        source="replay", replay_files=[shared_data / RECORDING], markets=(Market.FUTURES,), data_dir=shared_data,
        trading=TradingOptions(accounts=[SimAccount(name="alice", api_key=KEY, api_secret=SECRET)]),
    )  # fmt: skip


@asynccontextmanager
async def lockstep_client(sim: MarketSimulator) -> AsyncIterator[tuple[Any, Any, aiohttp.ClientSession]]:
    """A market-data connection on the recorded depth stream and the control socket, said hello."""
    async with aiohttp.ClientSession() as session:
        market = await session.ws_connect(f"{sim.futures_ws_url}/public/stream?streams=btcusdt@depth@100ms")
        control = await session.ws_connect(sim.rest_url.replace("http://", "ws://") + CONTROL_PATH)
        await control.send_bytes(orjson.dumps({"op": "hello"}))
        hello = orjson.loads((await control.receive(timeout=5)).data)
        assert hello["op"] == "hello" and hello["start_ns"] == sim.lockstep.plan.start_ns  # type: ignore[union-attr]
        try:
            yield market, control, session
        finally:
            await market.close()
            await control.close()


async def drain_frames(market: Any, timeout_s: float = 0.2) -> int:
    count = 0
    while True:
        try:
            message = await market.receive(timeout=timeout_s)
        except TimeoutError:
            return count
        if message.type is not aiohttp.WSMsgType.TEXT:
            return count
        count += 1


async def ack(control: Any, step: dict[str, Any], commands: int = 0) -> dict[str, Any]:
    await control.send_bytes(orjson.dumps({"op": "ack", "ts_ns": step["ts_ns"], "commands": commands}))
    return dict(orjson.loads((await control.receive(timeout=5)).data))


@pytest.mark.slow
async def test_one_step_at_a_time_and_nothing_more_before_the_ack(shared_data: Path) -> None:
    plan = plan_for(shared_data)
    async with (
        MarketSimulator(options(shared_data), lockstep=plan) as sim,
        lockstep_client(sim) as (market, control, _),
    ):
        step = orjson.loads((await control.receive(timeout=5)).data)
        assert step["op"] == "step" and step["ts_ns"] == plan.start_ns
        received = await drain_frames(market)
        assert received == step["market_frames"] > 0  # the diffs before the table's first row, at once
        await asyncio.sleep(0.3)
        assert await drain_frames(market, 0.1) == 0  # the simulator waits for the ack
        times = [step["ts_ns"]]
        for _ in range(30):
            step = await ack(control, step)
            assert step["op"] == "step"
            times.append(step["ts_ns"])
            received += await drain_frames(market, 0.05)
            assert received == step["market_frames"]
        assert times == sorted(times) and len(set(times)) == len(times)
        depth = [f for f in plan.frames if "@depth" in f.frame.stream and f.ts_local_ns <= times[-1]]
        assert step["market_frames"] == len(depth)  # every subscribed frame up to the step's time, no more
        assert sim.stats()["lockstep"]["steps"] == len(times)


@pytest.mark.slow
async def test_an_order_is_stamped_at_the_step_plus_entry_latency_and_answered_after_the_response_latency(
    shared_data: Path,
) -> None:
    plan = plan_for(shared_data)
    async with (
        MarketSimulator(options(shared_data), lockstep=plan) as sim,
        lockstep_client(sim) as (market, control, session),
    ):
        step = orjson.loads((await control.receive(timeout=5)).data)
        while step["ts_ns"] < plan.snapshot_local_ns[(Market.FUTURES, "BTCUSDT")] + 50 * NANOS_PER_MILLI:
            await drain_frames(market, 0.01)
            step = await ack(control, step)
        sent_ns = step["ts_ns"]
        book = sim.lockstep.engine.book(Market.FUTURES, "BTCUSDT")  # type: ignore[union-attr]
        bid = book.best_bid_price
        assert bid is not None
        params = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTX", "quantity": "0.002",
                  "price": f"{bid - 50:.1f}", "newClientOrderId": "lockstep-1"}  # fmt: skip
        # a request refused by validation is answered at once, and counted as sent and answered
        bad = signed_query({**params, "type": "BOGUS"}, SECRET, sent_ns // NANOS_PER_MILLI, 5000)
        async with session.post(f"{sim.rest_url}/fapi/v1/order?{bad}", headers={"X-MBX-APIKEY": KEY}) as refused:
            assert refused.status == 400
        counters = sim.lockstep.counters  # type: ignore[union-attr]
        assert (counters.commands, counters.answers_released) == (1, 1)
        query = signed_query(params, SECRET, sent_ns // NANOS_PER_MILLI, 5000)
        answer = asyncio.ensure_future(
            session.post(f"{sim.rest_url}/fapi/v1/order?{query}", headers={"X-MBX-APIKEY": KEY})
        )
        while counters.commands < 2:
            await asyncio.sleep(0.005)
        steps = []
        while not answer.done():
            step = await ack(control, step, commands=2)
            steps.append(step)
            await asyncio.sleep(0.02)
        response = answer.result()
        body = await response.json()
        assert response.status == 200 and body["status"] == "NEW" and body["clientOrderId"] == "lockstep-1"
        arrival_ms = (sent_ns + ENTRY_MS * NANOS_PER_MILLI) // NANOS_PER_MILLI
        assert body["updateTime"] == arrival_ms  # exchange time = step time + entry latency
        released = next(s for s in steps if s["answers"] == 2)
        assert released["ts_ns"] >= sent_ns + (ENTRY_MS + RESPONSE_MS) * NANOS_PER_MILLI  # held until delivered
        assert all(s["answers"] == 1 for s in steps[: steps.index(released)])
        assert counters.missing_commands == 0


async def test_refusals_name_the_problem(shared_data: Path) -> None:
    with pytest.raises(ConfigurationError, match="constant feed latency"):
        plan_for(shared_data, feed={"model": "lognormal", "median_ms": 5.0, "sigma": 1.0})
    plan = plan_for(shared_data, seconds=2)
    with pytest.raises(ConfigurationError, match="lockstep needs a replay source"):
        MarketSimulator(SimulatorOptions(markets=(Market.FUTURES,), data_dir=shared_data), lockstep=plan)
    async with (
        MarketSimulator(options(shared_data), lockstep=plan) as sim,
        lockstep_client(sim) as (_, _, session),
    ):
        second = await session.ws_connect(sim.rest_url.replace("http://", "ws://") + CONTROL_PATH)
        refused = orjson.loads((await second.receive(timeout=5)).data)
        assert refused == {"op": "error", "msg": "a lockstep client is already connected"}
        await second.close()
        # order endpoints that would bypass SimVenue's latencies are refused, not served another way
        now_ms = plan.start_ns // NANOS_PER_MILLI
        modify = {"symbol": "BTCUSDT", "origClientOrderId": "x", "side": "BUY", "quantity": "0.002", "price": "1"}
        cancel = {"symbol": "BTCUSDT", "orderId": "1"}
        for method, params in (("PUT", modify), ("DELETE", cancel)):
            query = signed_query(params, SECRET, now_ms, 5000)
            async with session.request(
                method, f"{sim.rest_url}/fapi/v1/order?{query}", headers={"X-MBX-APIKEY": KEY}
            ) as response:
                body = await response.json()
                assert response.status == 400 and body["code"] == -1000 and "lockstep mode" in body["msg"], body
