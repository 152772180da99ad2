"""Replay of the shared raw recordings through the simulator: every update id comes out, in order, and
a client syncing over the wire ends with the book built directly from the raw file."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from kestrel.core.enums import Market
from kestrel.replay.raw import FrameKind, merge_by_local_time, read_raw
from tests.sim.conftest import ReferenceBook, SimFactory, get_json

RECORDINGS = [
    (Market.SPOT, ["hftbacktest/spot/btcusdt_20240808.gz"]),
    (Market.FUTURES, ["hftbacktest/usdm/ethusdt_20240718.gz"]),
    (Market.SPOT, ["cryptofeed/BINANCE.ws.1.0.gz"]),
    (Market.FUTURES, ["cryptofeed/BINANCE_FUTURES.ws.1.0.gz"]),
]


def _raw_books(paths: list[Path], market: Market) -> tuple[dict[str, ReferenceBook], dict[str, list[tuple[int, int]]]]:
    """Books built directly from the raw files (snapshot + diffs per spec §3), and each symbol's ids."""
    sources = [read_raw(path) for path in paths]
    sources += [read_raw(sibling) for path in paths if ".ws." in path.name
                for sibling in path.parent.glob(path.name.split(".ws.")[0] + ".http.*")]  # fmt: skip
    books: dict[str, ReferenceBook] = {}
    ids: dict[str, list[tuple[int, int]]] = {}
    pending: dict[str, list[dict[str, Any]]] = {}
    for frame in merge_by_local_time(sources):
        if frame.market is not market:
            continue
        if frame.kind is FrameKind.SNAPSHOT:
            book = books.setdefault(frame.symbol, ReferenceBook(futures=market is Market.FUTURES))
            book.load_snapshot(frame.json())
            for event in pending.pop(frame.symbol, []):
                book.apply(event)
        elif "@depth" in frame.stream:
            event = frame.json()
            ids.setdefault(frame.symbol, []).append((event["U"], event["u"]))
            if frame.symbol in books:
                assert books[frame.symbol].apply(event) != "gap"
            else:
                pending.setdefault(frame.symbol, []).append(event)
    return books, ids


@pytest.mark.parametrize(("market", "files"), RECORDINGS, ids=[files[0] for _, files in RECORDINGS])
async def test_replay_delivers_every_update_id_and_the_raw_book(
    make_sim: SimFactory, shared_data: Path, market: Market, files: list[str]
) -> None:
    paths = [shared_data / name for name in files]
    expected_books, expected_ids = _raw_books(paths, market)
    async with (
        make_sim(source="replay", replay_files=paths, markets=(market,), speed=0) as sim,
        aiohttp.ClientSession() as session,
    ):
        symbols = sim.symbols(market)
        assert set(symbols) == set(expected_ids)
        # ask for depth@100ms whatever speed was recorded: the recorded stream answers, under our name
        streams = "/".join(f"{symbol.lower()}@depth@100ms" for symbol in symbols)
        route = "/public" if market is Market.FUTURES else ""
        prefix = "/fapi/v1" if market is Market.FUTURES else "/api/v3"
        received: dict[str, list[tuple[int, int]]] = {symbol: [] for symbol in symbols}
        books: dict[str, ReferenceBook] = {}
        from_recorded_snapshot: dict[str, bool] = {}
        async with session.ws_connect(f"{sim.ws_url}{route}/stream?streams={streams}") as ws:
            buffered: dict[str, list[dict[str, Any]]] = {symbol: [] for symbol in symbols}
            for symbol in symbols:
                status, snapshot, _ = await get_json(
                    session, f"{sim.rest_url}{prefix}/depth?symbol={symbol}&limit=1000"
                )
                assert status == 200
                books[symbol] = ReferenceBook(futures=market is Market.FUTURES)
                books[symbol].load_snapshot(snapshot)
                recorded = expected_books[symbol].snapshot_id
                from_recorded_snapshot[symbol] = snapshot["lastUpdateId"] == recorded
            while True:
                try:
                    message = await ws.receive(timeout=0.5)
                except TimeoutError:
                    if sim.replay_finished() and sim.hub.backlog() == 0:
                        break  # finished, nothing queued, and nothing arrived for 0.5 s
                    continue
                wrapper = orjson.loads(message.data)
                assert wrapper["stream"].endswith("@depth@100ms")
                event = wrapper["data"]
                received[event["s"]].append((event["U"], event["u"]))
                buffered[event["s"]].append(event)
                if books[event["s"]].update_id is not None:
                    for pending in buffered.pop(event["s"]):
                        assert books[event["s"]].apply(pending) != "gap"
                    buffered[event["s"]] = []
        assert sim.replay_finished()
        for symbol in symbols:
            assert received[symbol] == expected_ids[symbol]  # every update id, in order
            final = sim.book(market, symbol)
            assert final.last_update_id == expected_ids[symbol][-1][1]
            assert expected_books[symbol].levels() == (final.bids, final.asks)
            if from_recorded_snapshot[symbol]:
                assert books[symbol].levels() == (final.bids, final.asks)
            else:
                # synced later from the simulator's book cut at 1000 levels: deeper levels are invisible
                assert books[symbol].levels(100) == (final.bids[:100], final.asks[:100])
        assert sim.stats()["total"]["gaps_injected"] == 0


async def test_snapshot_after_the_recorded_one_is_the_replayed_book(make_sim: SimFactory, shared_data: Path) -> None:
    path = shared_data / "hftbacktest/usdm/ethusdt_20240718.gz"
    async with (
        make_sim(source="replay", replay_files=[path], markets=(Market.FUTURES,), speed=0) as sim,
        aiohttp.ClientSession() as session,
    ):
        async with session.ws_connect(f"{sim.futures_ws_url}/ws/ethusdt@depth@0ms") as ws:
            await sim.wait_replay_finished(timeout_s=30)
            await ws.close()
        status, snapshot, _ = await get_json(session, f"{sim.rest_url}/fapi/v1/depth?symbol=ETHUSDT&limit=5")
        view = sim.book(Market.FUTURES, "ETHUSDT", limit=5)
        assert status == 200 and snapshot["lastUpdateId"] == view.last_update_id
        assert [(Decimal(p), Decimal(q)) for p, q in snapshot["bids"]] == view.bids
        assert len(snapshot["bids"][0][0].split(".")[1]) == 2  # the recording's own precision


async def test_replay_paced_by_speed_and_identical_every_time(make_sim: SimFactory, shared_data: Path) -> None:
    path = shared_data / "cryptofeed/BINANCE_FUTURES.ws.1.0.gz"  # 30 s recorded
    runs = []
    for _ in range(2):
        async with (
            make_sim(source="replay", replay_files=[path], markets=(Market.FUTURES,), speed=30) as sim,
            aiohttp.ClientSession() as session,
        ):
            streams = "/".join(
                f"{s.lower()}@{kind}" for s in sim.symbols(Market.FUTURES) for kind in ("aggTrade", "kline_1m")
            )
            loop = asyncio.get_running_loop()
            async with session.ws_connect(f"{sim.futures_ws_url}/market/stream?streams={streams}") as ws:
                started = loop.time()
                frames = []
                while not (sim.replay_finished() and sim.hub.backlog() == 0):
                    try:
                        message = await ws.receive(timeout=0.2)
                    except TimeoutError:
                        continue
                    frames.append(message.data)
                    elapsed = loop.time() - started
                while True:  # frames already written but still in flight
                    try:
                        frames.append((await ws.receive(timeout=0.3)).data)
                    except TimeoutError:
                        break
            runs.append(frames)
            assert sim.replay_finished()
        assert 0.5 < elapsed < 10.0  # 30 s of recording at 30× ≈ 1 s: never faster than paced
    assert runs[0] == runs[1] and len(runs[0]) == 91 + 67
    assert sum(b'"stream":"sushiusdt@aggTrade"' in frame.encode() for frame in runs[0]) > 0


async def test_replay_bad_input(make_sim: SimFactory, shared_data: Path, tmp_path: Path) -> None:
    from kestrel.core.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="no such file"):
        async with make_sim(source="replay", replay_files=[tmp_path / "missing.gz"]):
            pass
    with pytest.raises(ConfigurationError, match="no stream frame"):
        async with make_sim(source="replay", replay_files=[shared_data / "hftbacktest/coinm/ethusd_perp_20240808.gz"]):
            pass


async def test_replay_waits_for_every_depth_stream_and_full_depth_snapshots(
    make_sim: SimFactory, shared_data: Path
) -> None:
    path = shared_data / "cryptofeed/BINANCE_FUTURES.ws.1.0.gz"
    expected_books, _ = _raw_books([path], Market.FUTURES)
    async with (
        make_sim(
            source="replay", replay_files=[path], markets=(Market.FUTURES,), speed=0,
            replay_start="all_depth_subscribed", replay_full_depth_snapshots=True,
        ) as sim,
        aiohttp.ClientSession() as session,
    ):  # fmt: skip
        symbols = sim.symbols(Market.FUTURES)
        first_half = "/".join(f"{s.lower()}@depth@100ms" for s in symbols[:2])
        second_half = "/".join(f"{s.lower()}@depth@100ms" for s in symbols[2:])
        async with session.ws_connect(f"{sim.futures_ws_url}/stream?streams={first_half}") as ws:
            with pytest.raises(TimeoutError):
                await ws.receive(timeout=0.5)  # half the shards connected: the replay waits
            async with session.ws_connect(f"{sim.futures_ws_url}/stream?streams={second_half}"):
                assert orjson.loads((await ws.receive(timeout=5)).data)["stream"].endswith("@depth@100ms")
                await sim.wait_replay_finished(timeout_s=30)
        for symbol in symbols:  # a late snapshot still has every level of the raw file's book
            status, snapshot, _ = await get_json(session, f"{sim.rest_url}/fapi/v1/depth?symbol={symbol}&limit=5")
            late = ReferenceBook(futures=True)
            late.load_snapshot(snapshot)
            assert status == 200 and late.levels() == expected_books[symbol].levels()
