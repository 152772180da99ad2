"""REST conformance of the simulator: paths, bodies, errors, weights and rate limits, over real sockets."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from itertools import pairwise

import aiohttp

from kestrel.core.enums import Market
from kestrel.sim import ProtocolLimits
from tests.sim.conftest import SimFactory, get_json


async def test_time_ping_and_weight_headers(make_sim: SimFactory) -> None:
    async with make_sim(symbols=2) as sim, aiohttp.ClientSession() as session:
        for prefix in ("/api/v3", "/fapi/v1"):
            status, body, headers = await get_json(session, f"{sim.rest_url}{prefix}/time")
            assert status == 200
            assert abs(body["serverTime"] - sim.server_time_ms()) < 1000
            status, body, headers = await get_json(session, f"{sim.rest_url}{prefix}/ping")
            assert (status, body) == (200, {})
            assert headers["X-MBX-USED-WEIGHT-1M"] == "2"  # time + ping, counted per market


async def test_exchange_info_has_recorded_filters(make_sim: SimFactory) -> None:
    async with make_sim(symbols=3) as sim, aiohttp.ClientSession() as session:
        status, body, headers = await get_json(session, f"{sim.rest_url}/fapi/v1/exchangeInfo")
        assert status == 200
        assert [entry["symbol"] for entry in body["symbols"]] == ["BTCUSDT", "ETHUSDT", "BCHUSDT"]
        btc = body["symbols"][0]
        filters = {item["filterType"]: item for item in btc["filters"]}
        assert filters["PRICE_FILTER"]["tickSize"] == "0.10"  # the 2025-03-06 USD-M file
        assert filters["MIN_NOTIONAL"]["notional"] == "100"
        assert body["rateLimits"] and headers["X-MBX-USED-WEIGHT-1M"] == "1"
        status, body, headers = await get_json(session, f"{sim.rest_url}/api/v3/exchangeInfo?symbol=ETHUSDT")
        assert [entry["symbol"] for entry in body["symbols"]] == ["ETHUSDT"]
        assert headers["X-MBX-USED-WEIGHT-1M"] == "20"
        status, body, _ = await get_json(session, f'{sim.rest_url}/api/v3/exchangeInfo?symbols=["BNBUSDT","BTCUSDT"]')
        assert status == 200 and [entry["symbol"] for entry in body["symbols"]] == ["BNBUSDT", "BTCUSDT"]
        status, body, _ = await get_json(session, f'{sim.rest_url}/api/v3/exchangeInfo?symbols=["BTCUSDT","BCHUSDT"]')
        assert (status, body["code"]) == (400, -1121)  # BCHUSDT is not among spot's first three


async def test_exchange_info_unknown_symbol_is_1121(make_sim: SimFactory) -> None:
    async with make_sim(symbols=2) as sim, aiohttp.ClientSession() as session:
        status, body, _ = await get_json(session, f"{sim.rest_url}/api/v3/exchangeInfo?symbol=NOPEUSDT")
        assert (status, body["code"]) == (400, -1121)


async def test_generated_symbols_beyond_the_recorded_list(make_sim: SimFactory) -> None:
    async with make_sim(symbols=400, markets=(Market.FUTURES,)) as sim:
        names = sim.symbols(Market.FUTURES)
        assert len(names) == 400 and len(set(names)) == 400
        assert names[0] == "BTCUSDT" and "SIM0001USDT" in names


async def test_depth_snapshot_shapes_and_weights(make_sim: SimFactory) -> None:
    async with make_sim(symbols=2) as sim, aiohttp.ClientSession() as session:
        status, body, headers = await get_json(session, f"{sim.rest_url}/fapi/v1/depth?symbol=BTCUSDT&limit=5")
        assert status == 200 and list(body) == ["lastUpdateId", "E", "T", "bids", "asks"]
        assert len(body["bids"]) == len(body["asks"]) == 5
        assert headers["X-MBX-USED-WEIGHT-1M"] == "2"
        bids = [Decimal(price) for price, _ in body["bids"]]
        asks = [Decimal(price) for price, _ in body["asks"]]
        assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]
        assert body["bids"][0][0].count(".") == 1 and len(body["bids"][0][0].split(".")[1]) == 2  # pricePrecision 2
        status, body, headers = await get_json(session, f"{sim.rest_url}/api/v3/depth?symbol=BTCUSDT&limit=1000")
        assert list(body) == ["lastUpdateId", "bids", "asks"]
        assert headers["X-MBX-USED-WEIGHT-1M"] == "50"
        assert len(body["bids"][0][0].split(".")[1]) == 8  # spot prints 8 decimals
        view = sim.book(Market.SPOT, "BTCUSDT")
        assert body["lastUpdateId"] <= view.last_update_id


async def test_parameter_errors(make_sim: SimFactory) -> None:
    async with make_sim(symbols=2) as sim, aiohttp.ClientSession() as session:
        cases = [
            ("/fapi/v1/depth", -1102),
            ("/fapi/v1/depth?symbol=DOGEBTC", -1121),
            ("/fapi/v1/depth?symbol=BTCUSDT&limit=abc", -1100),
            ("/api/v3/klines?symbol=BTCUSDT", -1102),
            ("/api/v3/klines?symbol=BTCUSDT&interval=7m", -1120),
            ("/fapi/v1/aggTrades?symbol=BTCUSDT&startTime=0&endTime=7200000", -1127),
        ]
        for path, code in cases:
            status, body, headers = await get_json(session, sim.rest_url + path)
            assert (status, body["code"]) == (400, code), path
            assert "X-MBX-USED-WEIGHT-1M" in headers


async def test_klines_history_and_alignment(make_sim: SimFactory) -> None:
    async with make_sim(symbols=1, markets=(Market.FUTURES,)) as sim, aiohttp.ClientSession() as session:
        status, rows, _ = await get_json(session, f"{sim.rest_url}/fapi/v1/klines?symbol=BTCUSDT&interval=5m&limit=7")
        assert status == 200 and len(rows) == 7
        opens = [row[0] for row in rows]
        assert all(open_ % 300_000 == 0 for open_ in opens)
        assert [b - a for a, b in pairwise(opens)] == [300_000] * 6
        for row in rows:
            assert len(row) == 12 and row[6] == row[0] + 299_999
            low, high = Decimal(row[3]), Decimal(row[2])
            assert low <= Decimal(row[1]) <= high and low <= Decimal(row[4]) <= high
        start = opens[0]
        status, later, _ = await get_json(
            session, f"{sim.rest_url}/fapi/v1/klines?symbol=BTCUSDT&interval=1m&startTime={start}&limit=3"
        )
        assert [row[0] for row in later] == [start, start + 60_000, start + 120_000]


async def test_agg_trades_rest_matches_ids(make_sim: SimFactory) -> None:
    async with make_sim(symbols=1, markets=(Market.FUTURES,)) as sim, aiohttp.ClientSession() as session:
        await asyncio.sleep(1.0)
        status, rows, _ = await get_json(session, f"{sim.rest_url}/fapi/v1/aggTrades?symbol=BTCUSDT&limit=1000")
        assert status == 200 and rows
        ids = [row["a"] for row in rows]
        assert ids == list(range(ids[0], ids[0] + len(ids)))
        for previous, row in pairwise(rows):
            assert row["f"] == previous["l"] + 1
        status, tail, _ = await get_json(session, f"{sim.rest_url}/fapi/v1/aggTrades?symbol=BTCUSDT&fromId={ids[-1]}")
        assert tail[0]["a"] == ids[-1]


async def test_premium_index_and_funding(make_sim: SimFactory) -> None:
    async with make_sim(symbols=3, markets=(Market.FUTURES,)) as sim, aiohttp.ClientSession() as session:
        status, body, headers = await get_json(session, f"{sim.rest_url}/fapi/v1/premiumIndex?symbol=ETHUSDT")
        assert status == 200 and body["symbol"] == "ETHUSDT" and body["nextFundingTime"] % (8 * 3_600_000) == 0
        assert headers["X-MBX-USED-WEIGHT-1M"] == "1"
        status, body, headers = await get_json(session, f"{sim.rest_url}/fapi/v1/premiumIndex")
        assert len(body) == 3 and headers["X-MBX-USED-WEIGHT-1M"] == "11"
        status, rows, _ = await get_json(session, f"{sim.rest_url}/fapi/v1/fundingRate?symbol=BTCUSDT&limit=5")
        times = [row["fundingTime"] for row in rows]
        assert len(rows) == 5 and times == sorted(times) and all(t % (8 * 3_600_000) == 0 for t in times)


async def test_weight_limit_429_then_418_ban(make_sim: SimFactory) -> None:
    limits = ProtocolLimits(weight_per_minute_futures=10, requests_over_limit_before_ban=2, ban_s=60)
    async with make_sim(symbols=1, limits=limits) as sim, aiohttp.ClientSession() as session:
        statuses = []
        for _ in range(16):
            async with session.get(f"{sim.rest_url}/fapi/v1/time") as response:
                statuses.append(response.status)
                if response.status in (429, 418):
                    assert int(response.headers["Retry-After"]) >= 1
                    body = await response.json()
                    assert body["code"] == -1003
        assert statuses[:10] == [200] * 10
        assert statuses[10:12] == [429, 429]
        assert set(statuses[12:]) == {418}
        # the spot budget is separate
        async with session.get(f"{sim.rest_url}/api/v3/time") as response:
            assert response.status == 200
        rest = sim.stats()["rest"]
        assert rest["rate_limited_429"] == 2 and rest["banned_418"] >= 4
