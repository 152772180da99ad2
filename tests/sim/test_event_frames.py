"""Our own recordings back onto the wire: events → frames → the simulator's replay → a client."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from kestrel.core.enums import Market
from kestrel.core.errors import ConfigurationError
from kestrel.core.events import AggregateTrade, BookTicker, DepthSnapshot, DepthUpdate, MarketEvent
from kestrel.replay.raw import FrameKind, merge_by_local_time, read_raw
from kestrel.sim import MarketSimulator, SimulatorOptions
from kestrel.sim.event_frames import decimals_from_exchange_info, frames_from_events
from tests.sim.conftest import ReferenceBook, SimFactory, get_json
from tests.sim.test_replay import _raw_books

MS = 1_000_000


def _levels(levels: list[list[str]]) -> list[tuple[float, float]]:
    return [(float(price), float(quantity)) for price, quantity in levels]


def _events(shared_data: Path) -> list[MarketEvent]:
    """What a recorder would have stored from the cryptofeed USD-M recording (a parser written for the test)."""
    folder = shared_data / "cryptofeed"
    frames = merge_by_local_time(
        [read_raw(folder / "BINANCE_FUTURES.ws.1.0.gz"), read_raw(folder / "BINANCE_FUTURES.http.0.0.gz")]
    )
    events: list[MarketEvent] = []
    for frame in frames:
        data: dict[str, Any] = frame.json()
        market, symbol, received = Market.FUTURES, frame.symbol, frame.ts_local_ns
        if frame.kind is FrameKind.SNAPSHOT:
            events.append(
                DepthSnapshot(
                    market,
                    symbol,
                    data["lastUpdateId"],
                    _levels(data["bids"]),
                    _levels(data["asks"]),
                    data["E"] * MS,
                    received,
                )
            )
        elif data.get("e") == "depthUpdate":
            events.append(
                DepthUpdate(
                    market,
                    symbol,
                    data["U"],
                    data["u"],
                    data["pu"],
                    _levels(data["b"]),
                    _levels(data["a"]),
                    data["E"] * MS,
                    received,
                )
            )
        elif data.get("e") == "bookTicker":
            events.append(
                BookTicker(
                    market,
                    symbol,
                    data["u"],
                    float(data["b"]),
                    float(data["B"]),
                    float(data["a"]),
                    float(data["A"]),
                    data["E"] * MS,
                    received,
                )
            )
        elif data.get("e") == "aggTrade":
            events.append(
                AggregateTrade(
                    market,
                    symbol,
                    data["a"],
                    float(data["p"]),
                    float(data["q"]),
                    data["f"],
                    data["l"],
                    data["m"],
                    data["T"] * MS,
                    received,
                )
            )
    events.sort(key=lambda event: event.ts_event)  # a recording replays in exchange-time order
    return events  # fmt: skip


async def test_recorded_events_replay_with_every_id_and_the_same_book(make_sim: SimFactory, shared_data: Path) -> None:
    events = _events(shared_data)
    expected_books, expected_ids = _raw_books([shared_data / "cryptofeed/BINANCE_FUTURES.ws.1.0.gz"], Market.FUTURES)
    frames = list(frames_from_events(events, decimals_from_exchange_info(shared_data)))
    assert len(frames) == len(events)
    with pytest.raises(ConfigurationError, match="replay needs"):
        async with make_sim(source="replay", markets=(Market.FUTURES,)):
            pass  # neither files nor frames

    options = SimulatorOptions(source="replay", markets=(Market.FUTURES,), speed=0, data_dir=shared_data,
                               replay_start="all_depth_subscribed")  # fmt: skip
    async with MarketSimulator(options, replay_frames=frames) as sim, aiohttp.ClientSession() as session:
        symbols = sim.symbols(Market.FUTURES)
        assert set(symbols) == set(expected_ids)
        streams = "/".join(f"{s.lower()}@{kind}" for s in symbols for kind in ("depth@100ms", "bookTicker"))
        books = {symbol: ReferenceBook(futures=True) for symbol in symbols}
        for symbol in symbols:
            _, snapshot, _ = await get_json(session, f"{sim.rest_url}/fapi/v1/depth?symbol={symbol}&limit=1000")
            books[symbol].load_snapshot(snapshot)
        received: dict[str, list[tuple[int, int]]] = {symbol: [] for symbol in symbols}
        tickers = 0
        async with session.ws_connect(f"{sim.futures_ws_url}/public/stream?streams={streams}") as ws:
            while True:
                try:
                    wrapper = orjson.loads((await ws.receive(timeout=0.5)).data)
                except TimeoutError:
                    if sim.replay_finished() and sim.hub.backlog() == 0:
                        break
                    continue
                event = wrapper["data"]
                if wrapper["stream"].endswith("@bookTicker"):
                    assert Decimal(event["b"]) > 0 and list(event)[:2] == ["e", "u"]
                    tickers += 1
                    continue
                received[event["s"]].append((event["U"], event["u"]))
                assert books[event["s"]].apply(event) != "gap"
        assert tickers == sum(isinstance(event, BookTicker) for event in events)
        for symbol in symbols:
            assert received[symbol] == expected_ids[symbol]
            view = sim.book(Market.FUTURES, symbol)
            assert books[symbol].levels() == (view.bids, view.asks) == expected_books[symbol].levels()


def test_rendered_payloads_read_back_as_recorded(shared_data: Path) -> None:
    events = _events(shared_data)
    decimals = decimals_from_exchange_info(shared_data)
    frames = list(frames_from_events(events, decimals))
    depth = next(frame for frame in frames if "@depth" in frame.stream)
    original = next(event for event in events if isinstance(event, DepthUpdate))
    payload = orjson.loads(depth.payload)
    assert list(payload) == ["e", "E", "T", "s", "U", "u", "pu", "b", "a"]
    assert (payload["U"], payload["u"], payload["pu"]) == (
        original.first_update_id,
        original.final_update_id,
        original.previous_final_update_id,
    )
    assert _levels(payload["b"]) == sorted(original.bids) and _levels(payload["a"]) == sorted(original.asks)
    snapshot = next(frame for frame in frames if frame.kind is FrameKind.SNAPSHOT and frame.symbol == "SUSHIUSDT")
    assert orjson.loads(snapshot.payload)["bids"][0] == ["7.6110", "6"]  # pricePrecision 4, quantityPrecision 0
