"""The fan-out hub without sockets: wrapping once per name, faults order, slow consumers."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from kestrel.core.enums import Market
from kestrel.sim.faults import FaultInjector, FaultPlan
from kestrel.sim.hub import SLOW_CONSUMER, Connection, StreamHub
from kestrel.sim.stats import SimulatorStats
from kestrel.sim.streams import Route, StreamKind
from kestrel.sim.timeline import Timeline


def _hub(plan: FaultPlan | None = None) -> tuple[StreamHub, SimulatorStats]:
    stats = SimulatorStats()
    timeline = Timeline()
    timeline.start()
    return StreamHub(stats, FaultInjector(plan or FaultPlan(), 1), timeline), stats


def _connection(market: Market, combined: bool, route: Route | None = None, max_outbox: int = 1000) -> Connection:
    # an unprepared aiohttp socket: these tests stop at the outbox, the writer task is not started
    return Connection(web.WebSocketResponse(), market, route, combined, 0.0, max_outbox)


def test_raw_and_combined_frames_and_routes() -> None:
    hub, stats = _hub()
    raw, combined, wrong_route = (
        _connection(Market.FUTURES, False, Route.MARKET),
        _connection(Market.FUTURES, True, Route.MARKET),
        _connection(Market.FUTURES, True, Route.PUBLIC),
    )
    for connection in (raw, combined, wrong_route):
        hub.add(connection)
        hub.subscribe(connection, "btcusdt@aggTrade")
    hub.publish(Market.FUTURES, "btcusdt@aggTrade", StreamKind.AGG_TRADE, "BTCUSDT", b'{"a":1}')
    assert raw.outbox == [b'{"a":1}']
    assert orjson.loads(combined.outbox[0]) == {"stream": "btcusdt@aggTrade", "data": {"a": 1}}
    assert wrong_route.outbox == [] and "btcusdt@aggTrade" in wrong_route.subscriptions  # listed, not delivered
    counters: dict[str, Any] = stats.as_dict()["per_symbol"]["futures:BTCUSDT"]
    assert counters["messages_sent"] == 1 and counters["frames_sent"] == 2


def test_unsubscribed_streams_are_not_rendered_or_counted() -> None:
    hub, stats = _hub(FaultPlan(drop_rate=1.0))
    rendered = []

    def render() -> bytes:
        rendered.append(1)
        return b"{}"

    hub.publish(Market.SPOT, "ethusdt@trade", StreamKind.TRADE, "ETHUSDT", render)
    assert rendered == [] and stats.as_dict()["total"]["drops_injected"] == 0


def test_reorder_swaps_with_the_next_message_and_flush_releases_a_lonely_one() -> None:
    hub, stats = _hub(FaultPlan(reorder_rate=1.0))
    connection = _connection(Market.SPOT, False)
    hub.add(connection)
    hub.subscribe(connection, "btcusdt@trade")
    for number in range(1, 4):
        hub.publish(Market.SPOT, "btcusdt@trade", StreamKind.TRADE, "BTCUSDT", b"%d" % number)
    assert connection.outbox == [b"2", b"1"]  # 1 held, 2 sent, then 1; 3 held again
    hub.flush_held()
    assert connection.outbox == [b"2", b"1", b"3"]
    total = stats.as_dict()["total"]
    assert total["reorders_injected"] == 1 and total["messages_sent"] == 3


def test_a_run_of_withheld_diffs_is_one_gap() -> None:
    hub, stats = _hub()
    connection = _connection(Market.FUTURES, False, Route.PUBLIC)
    hub.add(connection)
    hub.subscribe(connection, "btcusdt@depth@100ms")
    hub.faults.pending_gaps[("futures", "BTCUSDT")] = 3
    for number in range(5):
        hub.publish(Market.FUTURES, "btcusdt@depth@100ms", StreamKind.DEPTH, "BTCUSDT", b"%d" % number)
    assert connection.outbox == [b"3", b"4"]
    assert stats.as_dict()["total"]["gaps_injected"] == 1


async def test_slow_consumer_is_cut() -> None:
    hub, _ = _hub()
    connection = _connection(Market.SPOT, False, max_outbox=5)
    hub.add(connection)
    hub.subscribe(connection, "btcusdt@trade")
    for _ in range(7):
        hub.publish(Market.SPOT, "btcusdt@trade", StreamKind.TRADE, "BTCUSDT", b"{}")
    assert connection.closed and connection.close_reason == SLOW_CONSUMER and connection.outbox == []
    await asyncio.sleep(0)
