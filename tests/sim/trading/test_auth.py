"""Signed REST as the exchange checks it: keys, HMAC signatures, timestamp / recvWindow, over real sockets."""

from __future__ import annotations

from urllib.parse import urlencode

from kestrel.binance.http.signing import sign
from tests.sim.trading.conftest import KEY, QUIET, SECRET, SimFactory, client


async def test_signature_over_query_and_body(make_trading_sim: SimFactory) -> None:
    """The signed payload is the query string followed directly by the body (spec §4.3); the query
    wins when a parameter is in both."""
    async with make_trading_sim(rates=QUIET) as sim, client(sim) as c:
        timestamp = sim.server_time_ms()
        query = urlencode({"omitZeroBalances": "true"})
        body = urlencode({"recvWindow": 5000, "timestamp": timestamp})
        signature = sign(SECRET, query + body)
        url = f"{sim.rest_url}/api/v3/account?{query}"
        headers = {"X-MBX-APIKEY": KEY, "Content-Type": "application/x-www-form-urlencoded"}
        async with c.session.request("GET", url, data=f"{body}&signature={signature}", headers=headers) as response:
            assert response.status == 200, await response.text()
        # upper-case hex is the same signature
        status, answer, _ = await c.call("GET", "/api/v3/account", {"omitZeroBalances": "true"}, in_body=True)
        assert status == 200 and {b["asset"] for b in answer["balances"]} == {"USDT", "BTC"}
        text = urlencode({"timestamp": sim.server_time_ms()})
        url = f"{sim.rest_url}/fapi/v3/balance?{text}&signature={sign(SECRET, text).upper()}"
        async with c.session.get(url, headers={"X-MBX-APIKEY": KEY}) as response:
            assert response.status == 200


async def test_key_and_signature_errors(make_trading_sim: SimFactory) -> None:
    async with make_trading_sim(rates=QUIET) as sim, client(sim) as c:
        for path in ("/api/v3/account", "/fapi/v2/account"):
            status, body, _ = await c.call("GET", path, key="")
            assert (status, body["code"]) == (401, -2014)
            assert body["msg"] == "API-key format invalid."
            status, body, _ = await c.call("GET", path, key="not-a-key!")
            assert (status, body["code"]) == (401, -2014)
            status, body, _ = await c.call("GET", path, key="Z" * 64)
            assert (status, body["code"]) == (401, -2015)
            assert body["msg"] == "Invalid API-key, IP, or permissions for action."
            status, body, _ = await c.call("GET", path, secret="X" * 64)
            assert (status, body) == (400, {"code": -1022, "msg": "Signature for this request is not valid."})
            status, body, _ = await c.call("GET", path, signed=False)
            assert (status, body["code"]) == (400, -1102)
        # a key alone opens USER_STREAM endpoints; a wrong one does not
        status, body, _ = await c.call("POST", "/fapi/v1/listenKey", signed=False, key="Z" * 64)
        assert (status, body["code"]) == (401, -2015)
        stats = sim.stats()["trading"]
        assert stats["signature_failures"] == 2 and stats["key_failures"] == 7


async def test_timestamp_and_recv_window(make_trading_sim: SimFactory) -> None:
    async with make_trading_sim(rates=QUIET) as sim, client(sim) as c:
        now = sim.server_time_ms()
        for path in ("/api/v3/account", "/fapi/v3/account"):
            status, body, _ = await c.call("GET", path, timestamp_ms=now - 6000)
            assert (status, body) == (
                400,
                {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."},
            )
            status, _, _ = await c.call("GET", path, {"recvWindow": 10_000}, timestamp_ms=sim.server_time_ms() - 6000)
            assert status == 200
            status, body, _ = await c.call("GET", path, timestamp_ms=sim.server_time_ms() + 1500)
            assert (status, body["code"]) == (400, -1021)
            assert body["msg"] == "Timestamp for this request was 1000ms ahead of the server's time."
        status, body, _ = await c.call("GET", "/api/v3/account", {"recvWindow": 70_000})
        assert (status, body["code"]) == (400, -1131)
        status, _, _ = await c.call("GET", "/fapi/v3/account", {"recvWindow": 70_000})
        assert status == 200  # futures documents no maximum
        assert sim.stats()["trading"]["timestamp_failures"] == 4


async def test_clock_skew_needs_a_time_sync(make_trading_sim: SimFactory) -> None:
    """A client on the wall clock fails with -1021 once the server's clock is skewed past recvWindow."""
    from kestrel.core.clock import LiveClock

    async with make_trading_sim(rates=QUIET) as sim, client(sim) as c:
        sim.set_clock_skew_ms(-10_000)
        wall = LiveClock().timestamp_ms()
        status, body, _ = await c.call("GET", "/api/v3/account", timestamp_ms=wall)
        assert (status, body["code"]) == (400, -1021)
        status, _, _ = await c.call("GET", "/api/v3/account", timestamp_ms=sim.server_time_ms())
        assert status == 200


async def test_trading_weights_come_from_the_endpoint_table(make_trading_sim: SimFactory) -> None:
    from kestrel.binance.http.endpoints import FUTURES, SPOT

    async with make_trading_sim(rates=QUIET) as sim, client(sim) as c:
        checks = [
            ("GET", "/api/v3/account", {}, SPOT["account"].weight),
            ("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}, SPOT["open_orders"].weight),
            ("GET", "/api/v3/openOrders", {}, 80),
            ("GET", "/fapi/v3/positionRisk", {}, FUTURES["position_risk"].weight),
            ("GET", "/fapi/v1/openOrders", {}, 40),
        ]
        used = {"spot": 0, "futures": 0}
        for method, path, params, weight in checks:
            market = "futures" if path.startswith("/fapi") else "spot"
            used[market] += weight
            status, _, headers = await c.call(method, path, params)
            assert status == 200
            assert headers["X-MBX-USED-WEIGHT-1M"] == str(used[market]), path
