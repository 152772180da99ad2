"""The synthetic market: determinism given the seed, and books, tickers and ids that agree with each other."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from kestrel.core.enums import Market
from kestrel.sim.hub import Payload
from kestrel.sim.instruments import ExchangeInfoCatalog, select_specs
from kestrel.sim.options import RateModel
from kestrel.sim.streams import StreamKind
from kestrel.sim.synthetic import SyntheticMarket
from tests.sim.conftest import ReferenceBook, SimFactory, get_json

ORIGIN_NS = 1_717_000_000_000_000_000
SECOND_NS = 1_000_000_000


class Recorder:
    def __init__(self, subscribed: set[str] | None = None) -> None:
        self.messages: list[tuple[str, str, bytes]] = []
        self.streams = subscribed or set()

    def publish(
        self,
        market: Market,
        stream: str,
        kind: StreamKind,
        symbol: str | None,
        payload: Payload,
        on_demand: bool = False,
    ) -> None:
        self.messages.append((market.value, stream, payload if isinstance(payload, bytes) else payload()))

    def subscribed(self, market: Market) -> set[str]:
        return self.streams


def _market(shared_data: Path, symbols: int | list[str], recorder: Recorder, seed: int = 7) -> SyntheticMarket:
    catalogs = {market: ExchangeInfoCatalog.load(market, shared_data / "exchange_info") for market in Market}
    specs = {market: select_specs(catalogs[market], symbols) for market in Market}
    market = SyntheticMarket(specs, catalogs, seed, RateModel(), recorder.publish, recorder.subscribed)
    market.start(ORIGIN_NS)
    return market


def test_same_seed_same_messages_whatever_the_pacing(shared_data: Path) -> None:
    one, two = Recorder({"btcusdt@kline_1m"}), Recorder({"btcusdt@kline_1m"})
    market_one, market_two = _market(shared_data, 3, one), _market(shared_data, 3, two)
    market_one.advance(ORIGIN_NS + 5 * SECOND_NS)
    for step in range(1, 5001):  # the same five seconds in 1 ms steps
        market_two.advance(ORIGIN_NS + step * 1_000_000)
    assert len(one.messages) > 1000
    assert one.messages == two.messages
    kinds = {stream.partition("@")[2] for _, stream, _ in one.messages}
    assert {"bookTicker", "trade", "aggTrade", "depth", "depth@100ms", "depth@0ms", "markPrice@1s", "kline_1m"} <= kinds


def test_other_seed_other_market_and_symbols_independent(shared_data: Path) -> None:
    first, other_seed, fewer = Recorder(), Recorder(), Recorder()
    _market(shared_data, 3, first).advance(ORIGIN_NS + 2 * SECOND_NS)
    _market(shared_data, 3, other_seed, seed=8).advance(ORIGIN_NS + 2 * SECOND_NS)
    _market(shared_data, ["BTCUSDT"], fewer).advance(ORIGIN_NS + 2 * SECOND_NS)
    assert first.messages != other_seed.messages

    def btc(messages: list[tuple[str, str, bytes]]) -> list[tuple[str, str, bytes]]:
        return [m for m in messages if m[1].startswith("btcusdt@") and "markPrice" not in m[1]]

    assert btc(first.messages) == btc(fewer.messages)  # a symbol's sequence ignores the others


def test_ids_link_and_tickers_match_the_book(shared_data: Path) -> None:
    recorder = Recorder()
    market = _market(shared_data, 2, recorder)
    market.advance(ORIGIN_NS + 10 * SECOND_NS)
    last: dict[tuple[str, str], dict[str, Any]] = {}
    for market_name, stream, data in recorder.messages:
        event = orjson.loads(data)
        if not isinstance(event, dict):
            continue
        key = (market_name, stream)
        previous = last.get(key)
        if "@depth" in stream and previous is not None:
            if market_name == "futures":
                assert event["pu"] == previous["u"], stream
            else:
                assert event["U"] == previous["u"] + 1, stream
        elif stream.endswith("@aggTrade") and previous is not None:
            assert event["a"] == previous["a"] + 1 and event["f"] == previous["l"] + 1
        elif stream.endswith("@trade") and previous is not None:
            assert event["t"] == previous["t"] + 1
        elif stream.endswith("@bookTicker"):
            assert Decimal(event["b"]) < Decimal(event["a"])
            if previous is not None:
                assert event["u"] > previous["u"]
        last[key] = event
    # the final ticker of each symbol is the book's top at its update id
    for (market_name, stream), event in last.items():
        if stream.endswith("@bookTicker"):
            view = market.book_view_at(Market(market_name), event["s"], event["u"])
            assert view.bids[0] == (Decimal(event["b"]), Decimal(event["B"]))
            assert view.asks[0] == (Decimal(event["a"]), Decimal(event["A"]))


@pytest.mark.parametrize("market", [Market.FUTURES, Market.SPOT])
async def test_client_book_equals_simulator_book_after_every_diff(make_sim: SimFactory, market: Market) -> None:
    """A client syncing per spec §3 holds exactly the simulator's book after every diff, never crossed;
    bookTickers equal the book's top, aggTrades cover the trades."""
    symbols = ["BTCUSDT", "ETHUSDT"]
    route = "/public" if market is Market.FUTURES else ""
    prefix = "/fapi/v1" if market is Market.FUTURES else "/api/v3"
    rates = RateModel(book_events_per_s_major=150, trades_per_s_major=20)
    async with make_sim(symbols=symbols, markets=(market,), rates=rates) as sim, aiohttp.ClientSession() as session:
        streams = "/".join(f"{s.lower()}@{kind}" for s in symbols for kind in ("depth@100ms", "bookTicker"))
        trade_streams = "/".join(f"{s.lower()}@{kind}" for s in symbols for kind in ("aggTrade", "trade"))
        market_route = "/market" if market is Market.FUTURES else ""
        async with (
            session.ws_connect(f"{sim.ws_url}{route}/stream?streams={streams}") as book_ws,
            session.ws_connect(f"{sim.ws_url}{market_route}/stream?streams={trade_streams}") as trade_ws,
        ):
            await asyncio.sleep(0.3)  # buffer a few diffs first, as a client must
            books = {}
            for symbol in symbols:
                status, snapshot, _ = await get_json(
                    session, f"{sim.rest_url}{prefix}/depth?symbol={symbol}&limit=1000"
                )
                assert status == 200
                books[symbol] = ReferenceBook(futures=market is Market.FUTURES)
                books[symbol].load_snapshot(snapshot)
            compared = defaultdict(int)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 3.0
            while loop.time() < deadline:
                message = await book_ws.receive(timeout=3.0)
                wrapper = orjson.loads(message.data)
                event = wrapper["data"]
                symbol = event["s"]
                if wrapper["stream"].endswith("@depth@100ms"):
                    outcome = books[symbol].apply(event)
                    assert outcome != "gap"
                    if outcome == "applied":
                        view = sim.book_at(market, symbol, event["u"])
                        bids, asks = books[symbol].levels()
                        assert (bids, asks) == (view.bids, view.asks)
                        assert bids[0][0] < asks[0][0]
                        compared[symbol] += 1
                else:
                    view = sim.book_at(market, symbol, event["u"])
                    assert view.bids[0] == (Decimal(event["b"]), Decimal(event["B"]))
                    assert view.asks[0] == (Decimal(event["a"]), Decimal(event["A"]))
            assert all(compared[symbol] >= 10 for symbol in symbols), compared
            await _check_trades(trade_ws)


async def _check_trades(ws: aiohttp.ClientWebSocketResponse) -> None:
    trades: dict[str, list[dict[str, Any]]] = defaultdict(list)
    aggregates: dict[str, list[dict[str, Any]]] = defaultdict(list)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 0.5
    while (left := deadline - loop.time()) > 0:
        try:
            message = await ws.receive(timeout=left)
        except TimeoutError:
            break
        wrapper = orjson.loads(message.data)
        target = aggregates if wrapper["stream"].endswith("@aggTrade") else trades
        target[wrapper["data"]["s"]].append(wrapper["data"])
    assert aggregates
    for symbol, rows in aggregates.items():
        by_id = {trade["t"]: trade for trade in trades[symbol]}
        for previous, row in pairwise(rows):
            assert row["a"] == previous["a"] + 1 and row["f"] == previous["l"] + 1
        for row in rows:
            covered = [by_id[trade_id] for trade_id in range(row["f"], row["l"] + 1) if trade_id in by_id]
            if len(covered) == row["l"] - row["f"] + 1:
                assert sum(Decimal(trade["q"]) for trade in covered) == Decimal(row["q"])
                assert all(trade["p"] == row["p"] and trade["m"] == row["m"] for trade in covered)


async def test_partial_depth_streams_are_the_book_top(make_sim: SimFactory) -> None:
    async with (
        make_sim(symbols=["BTCUSDT"], rates=RateModel(book_events_per_s_major=100)) as sim,
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{sim.ws_url}/ws/btcusdt@depth5@100ms") as spot,
        session.ws_connect(f"{sim.ws_url}/public/ws/btcusdt@depth10@500ms") as futures,
    ):
        for _ in range(3):
            event = orjson.loads((await spot.receive(timeout=3)).data)
            assert list(event) == ["lastUpdateId", "bids", "asks"] and len(event["bids"]) == 5
            view = sim.book_at(Market.SPOT, "BTCUSDT", event["lastUpdateId"])
            assert [(Decimal(p), Decimal(q)) for p, q in event["bids"]] == view.bids[:5]
            assert [(Decimal(p), Decimal(q)) for p, q in event["asks"]] == view.asks[:5]
        previous = None
        for _ in range(3):
            event = orjson.loads((await futures.receive(timeout=3)).data)
            assert event["e"] == "depthUpdate" and len(event["b"]) == 10
            view = sim.book_at(Market.FUTURES, "BTCUSDT", event["u"])
            assert [(Decimal(p), Decimal(q)) for p, q in event["a"]] == view.asks[:10]
            if previous is not None:
                assert event["pu"] == previous["u"] and event["E"] - previous["E"] == 500
            previous = event


async def test_liquidations_open_interest_and_mark_price(make_sim: SimFactory) -> None:
    rates = RateModel(liquidations_per_s_major=5, liquidations_per_s_min=5)
    async with (
        make_sim(symbols=2, markets=(Market.FUTURES,), rates=rates) as sim,
        aiohttp.ClientSession() as session,
        session.ws_connect(
            f"{sim.futures_ws_url}/market/stream?streams=!forceOrder@arr/btcusdt@forceOrder/btcusdt@markPrice@1s"
        ) as ws,
    ):
        seen: dict[str, list[dict[str, Any]]] = defaultdict(list)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 3.5
        while (left := deadline - loop.time()) > 0:
            try:
                wrapper = orjson.loads((await ws.receive(timeout=left)).data)
            except TimeoutError:
                break
            seen[wrapper["stream"]].append(wrapper["data"])
        orders = seen["btcusdt@forceOrder"]
        assert orders and all(order["e"] == "forceOrder" and order["o"]["s"] == "BTCUSDT" for order in orders)
        times = [order["E"] for order in orders]
        assert all(later - earlier >= 1000 for earlier, later in pairwise(times))  # ≤ 1/s
        first = orders[0]["o"]
        assert first["X"] == "FILLED" and first["z"] == first["q"] and first["S"] in ("BUY", "SELL")
        assert {order["o"]["s"] for order in seen["!forceOrder@arr"]} == {"BTCUSDT", "ETHUSDT"}
        marks = seen["btcusdt@markPrice@1s"]
        assert len(marks) >= 2 and marks[0]["e"] == "markPriceUpdate" and len(marks[0]["p"].split(".")[1]) == 8
        status, interest, _ = await get_json(session, f"{sim.rest_url}/fapi/v1/openInterest?symbol=BTCUSDT")
        assert (
            status == 200
            and set(interest) == {"openInterest", "symbol", "time"}
            and Decimal(interest["openInterest"]) > 0
        )
