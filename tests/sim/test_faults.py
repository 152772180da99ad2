"""Fault injection: every injected fault is observable by a client and counted exactly."""

from __future__ import annotations

import asyncio
import statistics
from collections import defaultdict
from typing import Any

import aiohttp
import orjson

from kestrel.core.clock import LiveClock
from kestrel.core.enums import Market
from kestrel.sim import FaultPlan, RateModel
from kestrel.sim.faults import periodic_faults_due
from kestrel.sim.streams import StreamKind
from tests.sim.conftest import ReferenceBook, SimFactory, get_json

BUSY = RateModel(book_events_per_s_major=120, book_events_per_s_min=40, trades_per_s_major=30, trades_per_s_min=15)


class StreamAuditor:
    """What a client can detect from the ids alone, per stream."""

    def __init__(self, futures: bool) -> None:
        self.futures = futures
        self.last_depth: dict[str, dict[str, Any]] = {}
        self.max_agg: dict[str, int] = {}
        self.seen_agg: dict[str, set[int]] = defaultdict(set)
        self.gaps = self.missing = self.duplicates = self.out_of_order = 0
        self.messages = 0

    def on_message(self, stream: str, event: dict[str, Any]) -> None:
        self.messages += 1
        if "@depth" in stream:
            previous = self.last_depth.get(stream)
            if previous is not None:
                linked = event["pu"] == previous["u"] if self.futures else event["U"] == previous["u"] + 1
                if not linked:
                    self.gaps += 1
            self.last_depth[stream] = event
        elif stream.endswith("@aggTrade"):
            agg_id, seen = event["a"], self.seen_agg[stream]
            if agg_id in seen:
                self.duplicates += 1
                return
            top = self.max_agg.get(stream)
            if top is not None and agg_id < top:
                self.out_of_order += 1
                self.missing -= 1  # the late one fills the hole counted when its successor came
            elif top is not None:
                self.missing += agg_id - top - 1
            seen.add(agg_id)
            self.max_agg[stream] = max(agg_id, top or agg_id)


async def _audit(
    ws: aiohttp.ClientWebSocketResponse, auditor: StreamAuditor, seconds: float, until_reply: int | None = None
) -> None:
    """Feed the auditor for `seconds`, or until the control reply with id `until_reply` arrives."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            message = await ws.receive(timeout=left)
        except TimeoutError:
            return
        if message.type is not aiohttp.WSMsgType.TEXT:
            return
        wrapper = orjson.loads(message.data)
        if "stream" in wrapper:
            auditor.on_message(wrapper["stream"], wrapper["data"])
        elif until_reply is not None and wrapper.get("id") == until_reply:
            return


async def _run_with_faults(
    make_sim: SimFactory, market: Market, plan: FaultPlan, kinds: tuple[str, ...]
) -> tuple[StreamAuditor, dict[str, Any]]:
    """Subscribe 4 symbols, switch faults on for 3 s, off again, drain; return the audit and the stats."""
    async with make_sim(symbols=4, markets=(market,), rates=BUSY, seed=3) as sim, aiohttp.ClientSession() as session:
        names = [symbol.lower() for symbol in sim.symbols(market)]
        streams = "/".join(f"{name}@{kind}" for name in names for kind in kinds)
        route = ("/public" if "depth@100ms" in kinds else "/market") if market is Market.FUTURES else ""
        auditor = StreamAuditor(futures=market is Market.FUTURES)
        async with session.ws_connect(f"{sim.ws_url}{route}/stream?streams={streams}") as ws:
            await _audit(ws, auditor, 0.5)
            sim.set_faults(plan)
            await _audit(ws, auditor, 3.0)
            sim.set_faults(FaultPlan())
            await _audit(ws, auditor, 1.5)  # every break gets a successor, held messages come out
            # stop the flow: every message counted as sent is before the reply on this connection
            await ws.send_json({"method": "UNSUBSCRIBE", "params": streams.split("/"), "id": 1})
            await _audit(ws, auditor, 5.0, until_reply=1)
            return auditor, sim.stats()


async def test_gaps_detected_equal_gaps_injected(make_sim: SimFactory) -> None:
    for market in (Market.FUTURES, Market.SPOT):
        auditor, stats = await _run_with_faults(make_sim, market, FaultPlan(gap_rate=0.1), ("depth@100ms",))
        injected = stats["per_stream"][StreamKind.DEPTH.value]["gaps_injected"]
        assert injected >= 3, injected
        assert auditor.gaps == injected
        assert sum(row["gaps_injected"] for row in stats["per_symbol"].values()) == injected


async def test_drops_duplicates_and_reorders_counted_exactly(make_sim: SimFactory) -> None:
    plan = FaultPlan(
        drop_rate=0.05,
        duplicate_rate=0.05,
        reorder_rate=0.05,
        drop_streams=[StreamKind.AGG_TRADE],
        duplicate_streams=[StreamKind.AGG_TRADE],
        reorder_streams=[StreamKind.AGG_TRADE],
    )
    auditor, stats = await _run_with_faults(make_sim, Market.FUTURES, plan, ("aggTrade",))
    counters = stats["per_stream"][StreamKind.AGG_TRADE.value]
    assert min(counters["drops_injected"], counters["duplicates_injected"], counters["reorders_injected"]) >= 3
    assert auditor.missing == counters["drops_injected"]
    assert auditor.duplicates == counters["duplicates_injected"]
    assert auditor.out_of_order == counters["reorders_injected"]
    assert auditor.messages == counters["messages_sent"] + counters["duplicates_injected"]


async def test_book_resyncs_equal_the_simulator_book(make_sim: SimFactory) -> None:
    """With gaps injected, a client that resyncs on every gap matches the simulator's book each time."""
    async with (
        make_sim(symbols=["BTCUSDT"], markets=(Market.FUTURES,), rates=BUSY) as sim,
        aiohttp.ClientSession() as session,
    ):
        async with session.ws_connect(f"{sim.ws_url}/public/ws/btcusdt@depth@100ms") as ws:
            sim.set_faults(FaultPlan(gap_rate=0.3))
            book = ReferenceBook(futures=True)
            resyncs = checked = 0
            needs_snapshot = True
            loop = asyncio.get_running_loop()
            # run until enough resyncs and checks happened (a loaded machine processes fewer per second)
            deadline = loop.time() + 30.0
            while (resyncs < 3 or checked < 10) and loop.time() < deadline:
                if needs_snapshot:
                    _, snapshot, _ = await get_json(session, f"{sim.rest_url}/fapi/v1/depth?symbol=BTCUSDT&limit=1000")
                    book.load_snapshot(snapshot)
                    needs_snapshot = False
                    resyncs += 1
                event = orjson.loads((await ws.receive(timeout=3.0)).data)
                outcome = book.apply(event)
                if outcome == "gap":
                    needs_snapshot = True
                elif outcome == "applied":
                    view = sim.book_at(Market.FUTURES, "BTCUSDT", event["u"])
                    assert book.levels() == (view.bids, view.asks)
                    checked += 1
        assert resyncs >= 3 and checked >= 10


async def test_stale_snapshot_is_older_than_the_stream(make_sim: SimFactory) -> None:
    plan = FaultPlan(stale_snapshot_rate=1.0, stale_snapshot_age_ms=2000)
    async with (
        make_sim(symbols=1, markets=(Market.SPOT,), rates=BUSY, faults=plan) as sim,
        aiohttp.ClientSession() as session,
    ):
        async with session.ws_connect(f"{sim.ws_url}/ws/btcusdt@depth@100ms") as ws:
            first = orjson.loads((await ws.receive(timeout=3.0)).data)
            await asyncio.sleep(1.0)
            _, snapshot, _ = await get_json(session, f"{sim.rest_url}/api/v3/depth?symbol=BTCUSDT")
            assert snapshot["lastUpdateId"] < first["U"]  # spot step 2: too old, fetch again
        assert sim.stats()["rest"]["stale_snapshots_injected"] == 1


async def test_rest_faults(make_sim: SimFactory) -> None:
    async with (
        make_sim(symbols=1, faults=FaultPlan(rest_5xx_rate=1.0, rest_5xx_status=503)) as sim,
        aiohttp.ClientSession() as session,
    ):
        status, body, _ = await get_json(session, f"{sim.rest_url}/fapi/v1/depth?symbol=BTCUSDT")
        assert status == 503 and body["code"] < 0
        sim.set_faults(FaultPlan(rest_429_rate=0.5, rest_418_rate=0.5, retry_after_s=7))
        statuses = []
        for _ in range(20):
            async with session.get(f"{sim.rest_url}/api/v3/time") as response:
                statuses.append(response.status)
                assert response.headers["Retry-After"] == "7"
        sim.set_faults(FaultPlan())
        status, _, _ = await get_json(session, f"{sim.rest_url}/api/v3/time")
        assert status == 200
        rest = sim.stats()["rest"]
        assert rest["errors_5xx_injected"] == 1
        assert rest["errors_429_injected"] == statuses.count(429) > 0
        assert rest["errors_418_injected"] == statuses.count(418) > 0


async def test_manual_gap_disconnect_stall_and_shutdown(make_sim: SimFactory) -> None:
    async with make_sim(symbols=1, rates=BUSY) as sim, aiohttp.ClientSession() as session:
        futures = await session.ws_connect(f"{sim.futures_ws_url}/ws/btcusdt@depth@100ms")
        spot = await session.ws_connect(f"{sim.ws_url}/stream?streams=btcusdt@depth@100ms")
        auditor = StreamAuditor(futures=True)
        for _ in range(3):
            auditor.on_message("btcusdt@depth@100ms", orjson.loads((await futures.receive(timeout=3)).data))
        sim.inject_gap(Market.FUTURES, "BTCUSDT", count=2)  # two consecutive withheld diffs: one gap
        for _ in range(4):
            auditor.on_message("btcusdt@depth@100ms", orjson.loads((await futures.receive(timeout=3)).data))
        assert auditor.gaps == 1 == sim.stats()["per_symbol"]["futures:BTCUSDT"]["gaps_injected"]

        loop = asyncio.get_running_loop()
        assert sim.stall_all(0.6) == 2
        started = loop.time()
        await futures.receive(timeout=3)
        assert loop.time() - started >= 0.5

        assert sim.send_shutdown_notice(grace_s=0.1) == 1
        message = await spot.receive(timeout=3)
        while message.type is aiohttp.WSMsgType.TEXT and b"serverShutdown" not in message.data.encode():
            message = await spot.receive(timeout=3)
        notice = orjson.loads(message.data)
        assert notice["stream"] == "!serverShutdown" and notice["data"]["e"] == "serverShutdown"
        while message.type is aiohttp.WSMsgType.TEXT:
            message = await spot.receive(timeout=3)
        assert spot.closed

        assert sim.disconnect_all() == 1
        message = await futures.receive(timeout=3)
        while message.type is aiohttp.WSMsgType.TEXT:
            message = await futures.receive(timeout=3)
        assert futures.closed
        connections = sim.stats()["connections"]
        assert connections["disconnects_injected"] == 1 and connections["stalls_injected"] == 2
        assert connections["shutdown_notices_injected"] == 1


async def test_delay_and_clock_skew(make_sim: SimFactory) -> None:
    clock = LiveClock()
    plan = FaultPlan(delay_ms=150, clock_skew_ms=-2000)
    async with (
        make_sim(symbols=1, markets=(Market.FUTURES,), rates=BUSY, faults=plan) as sim,
        aiohttp.ClientSession() as session,
    ):
        _, body, _ = await get_json(session, f"{sim.rest_url}/fapi/v1/time")
        assert abs(body["serverTime"] - clock.timestamp_ms() + 2000) < 200
        lags = []
        async with session.ws_connect(f"{sim.futures_ws_url}/ws/btcusdt@bookTicker") as ws:
            for _ in range(30):
                event = orjson.loads((await ws.receive(timeout=3)).data)
                lags.append(clock.timestamp_ms() - event["E"])
        # skewed 2 s behind and delayed 150 ms: events look ~2.15 s old
        assert 2100 <= statistics.median(lags) <= 3500


async def test_malformed_frames_and_unknown_events_are_extra_frames(make_sim: SimFactory) -> None:
    plan = FaultPlan(malformed_rate=0.1, unknown_event_rate=0.1)
    async with (
        make_sim(symbols=2, markets=(Market.FUTURES,), rates=BUSY, seed=5) as sim,
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{sim.ws_url}/public/stream?streams=btcusdt@depth@100ms/ethusdt@bookTicker") as ws,
    ):
        sim.set_faults(plan)
        auditor = StreamAuditor(futures=True)
        malformed = unknown = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2.0
        while loop.time() < deadline:
            message = await ws.receive(timeout=3)
            try:
                wrapper = orjson.loads(message.data)
            except orjson.JSONDecodeError:
                malformed += 1
                continue
            if wrapper["data"].get("e") == "simulatorUnknownEvent":
                unknown += 1
            else:
                auditor.on_message(wrapper["stream"], wrapper["data"])
        await ws.send_json({"method": "UNSUBSCRIBE", "params": ["btcusdt@depth@100ms", "ethusdt@bookTicker"], "id": 1})
        while "id" not in (wrapper := _loads_or_empty((await ws.receive(timeout=3)).data)):
            if not wrapper:
                malformed += 1
            elif wrapper["data"].get("e") == "simulatorUnknownEvent":
                unknown += 1
            else:
                auditor.on_message(wrapper["stream"], wrapper["data"])
        total = sim.stats()["total"]
    assert malformed == total["malformed_injected"] > 0
    assert unknown == total["unknown_events_injected"] > 0
    assert auditor.gaps == 0  # the real sequence is untouched
    assert auditor.messages == total["messages_sent"]


def _loads_or_empty(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def test_periodic_faults_fire_once_per_period_counted_from_the_first_look() -> None:
    last: dict[str, float] = {}
    periods = {"stall": 1.0, "shutdown": None, "disconnect": 0.5}
    assert periodic_faults_due(last, periods, 10.0) == []  # the first period starts now
    assert periodic_faults_due(last, periods, 10.4) == []
    assert periodic_faults_due(last, periods, 10.5) == ["disconnect"]
    assert periodic_faults_due(last, periods, 10.9) == []
    assert periodic_faults_due(last, periods, 11.0) == ["stall", "disconnect"]
    assert "shutdown" not in last  # a fault without a period never fires
