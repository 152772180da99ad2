"""Spot OCO order lists over real sockets: placement, listStatus, cancel, and one leg executing."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from kestrel.core.enums import Market
from tests.sim.trading.conftest import BUSY, QUIET, SimFactory, best, client, spot_stream_url, user_stream

SPOT = Market.SPOT
TICK = Decimal("0.01")
QUANTITY = Decimal("0.3")  # of the account's 1 BTC


def _oco(bid: Decimal, ask: Decimal, above: Decimal | None = None) -> dict[str, Any]:
    return {
        "symbol": "BTCUSDT",
        "side": "SELL",
        "quantity": QUANTITY,
        "aboveType": "LIMIT_MAKER",
        "abovePrice": above if above is not None else ask + 20 * TICK,
        "belowType": "STOP_LOSS_LIMIT",
        "belowStopPrice": bid - 20 * TICK,
        "belowPrice": bid - 21 * TICK,
        "belowTimeInForce": "GTC",
        "listClientOrderId": "oco-1",
    }


async def test_oco_is_placed_reported_and_cancelled(make_trading_sim: SimFactory) -> None:
    async with make_trading_sim(rates=QUIET, markets=(SPOT,)) as sim, client(sim) as c:
        bid, ask = best(sim, SPOT)
        key = (await c.ok("POST", "/api/v3/userDataStream", signed=False))["listenKey"]
        async with user_stream(spot_stream_url(sim, key)) as stream:
            placed = await c.ok("POST", "/api/v3/orderList/oco", _oco(bid, ask))
            assert (placed["contingencyType"], placed["listStatusType"], placed["listOrderStatus"]) == (
                "OCO",
                "EXEC_STARTED",
                "EXECUTING",
            )
            assert placed["listClientOrderId"] == "oco-1"
            assert [r["type"] for r in placed["orderReports"]] == ["LIMIT_MAKER", "STOP_LOSS_LIMIT"]
            list_id = placed["orderListId"]
            reports = [await stream.next("executionReport") for _ in range(2)]
            assert {(r["x"], r["g"]) for r in reports} == {("NEW", list_id)}
            locked = await stream.next("outboundAccountPosition")
            assert {b["a"]: Decimal(b["l"]) for b in locked["B"]}["BTC"] == QUANTITY  # one lock for both legs
            started = await stream.next("listStatus")
            assert (started["l"], started["L"], started["C"], len(started["O"])) == (
                "EXEC_STARTED",
                "EXECUTING",
                "oco-1",
                2,
            )
            query = await c.ok("GET", "/api/v3/orderList", {"orderListId": list_id})
            assert query["listOrderStatus"] == "EXECUTING" and "orderReports" not in query
            assert [o["orderListId"] for o in await c.ok("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"})] == [
                list_id,
                list_id,
            ]
            assert len(await c.ok("GET", "/api/v3/openOrderList")) == 1
            cancelled = await c.ok("DELETE", "/api/v3/orderList", {"symbol": "BTCUSDT", "listClientOrderId": "oco-1"})
            assert cancelled["listOrderStatus"] == "ALL_DONE"
            assert [r["status"] for r in cancelled["orderReports"]] == ["CANCELED", "CANCELED"]
            done = await stream.next("listStatus")
            assert (done["l"], done["L"]) == ("ALL_DONE", "ALL_DONE")
            assert sum(1 for e in stream.events if e.get("x") == "CANCELED") == 2
        assert await c.ok("GET", "/api/v3/openOrderList") == []
        status, body, _ = await c.call("DELETE", "/api/v3/orderList", {"symbol": "BTCUSDT", "orderListId": list_id})
        assert (status, body["code"]) == (400, -2011)


async def test_oco_refusals(make_trading_sim: SimFactory) -> None:
    async with make_trading_sim(rates=QUIET, markets=(SPOT,)) as sim, client(sim) as c:
        bid, ask = best(sim, SPOT)
        cases = [
            ({**_oco(bid, ask), "abovePrice": bid - 30 * TICK}, -1013),  # limit leg below the market
            ({**_oco(bid, ask), "belowType": "LIMIT_MAKER"}, -1116),
            ({**_oco(bid, ask), "aboveType": "STOP_LOSS", "belowType": "STOP_LOSS"}, -1116),
            ({k: v for k, v in _oco(bid, ask).items() if k != "quantity"}, -1102),
            ({**_oco(bid, ask), "quantity": "5"}, -2010),  # more BTC than the account has
        ]
        for params, code in cases:
            status, body, _ = await c.call("POST", "/api/v3/orderList/oco", params)
            assert status == 400 and body["code"] == code, (params, body)


async def test_one_leg_executes_and_the_other_expires(make_trading_sim: SimFactory) -> None:
    async with make_trading_sim(rates=BUSY, markets=(SPOT,)) as sim, client(sim) as c:
        key = (await c.ok("POST", "/api/v3/userDataStream", signed=False))["listenKey"]
        async with user_stream(spot_stream_url(sim, key)) as stream:
            for _ in range(50):  # a limit-maker leg one tick under the best ask: first in line for buyers
                bid, ask = best(sim, SPOT)
                if ask - bid > TICK:
                    status, placed, _ = await c.call("POST", "/api/v3/orderList/oco", _oco(bid, ask, above=ask - TICK))
                    if status == 200:
                        break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("no room inside the spread")
            limit_id, stop_id = (r["orderId"] for r in placed["orderReports"])
            trade = await stream.next("executionReport", timeout=20.0, where=lambda e: e["x"] == "TRADE")
            assert trade["i"] == limit_id and trade["m"] is True
            expired = await stream.next("executionReport", where=lambda e: e["i"] == stop_id)
            assert (expired["x"], expired["X"]) == ("EXPIRED", "EXPIRED")
            done = await stream.next("listStatus", timeout=20.0, where=lambda e: e["l"] == "ALL_DONE")
            assert done["g"] == placed["orderListId"]
        stop = await c.ok("GET", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": stop_id})
        assert stop["status"] == "EXPIRED"
