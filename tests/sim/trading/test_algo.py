"""USD-M conditional orders through the Algo Service (`/fapi/v1/algoOrder`, ALGO_UPDATE), over real
sockets: placing, querying, cancelling, and a stop that triggers when the simulated market moves."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from kestrel.core.enums import Market
from tests.sim.trading.conftest import (
    BUSY,
    QUIET,
    SignedClient,
    SimFactory,
    best,
    client,
    futures_stream_url,
    quantity_for,
    user_stream,
)

FUTURES = Market.FUTURES
STEP = Decimal("0.001")
TICK = Decimal("0.1")


async def test_algo_orders_live_apart_from_regular_orders(make_trading_sim: SimFactory) -> None:
    async with make_trading_sim(rates=QUIET, markets=(FUTURES,)) as sim, client(sim) as c:
        bid, ask = best(sim, FUTURES)
        quantity = quantity_for(Decimal(150), ask, STEP)
        key = (await c.ok("POST", "/fapi/v1/listenKey", signed=False))["listenKey"]
        async with user_stream(futures_stream_url(sim, key)) as stream:
            base = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "BUY", "quantity": quantity}
            stop = await c.ok(
                "POST",
                "/fapi/v1/algoOrder",
                {**base, "type": "STOP_MARKET", "triggerPrice": ask + 50 * TICK, "clientAlgoId": "sl-1"},
            )
            assert (stop["algoStatus"], stop["orderType"], stop["clientAlgoId"]) == ("NEW", "STOP_MARKET", "sl-1")
            assert Decimal(stop["triggerPrice"]) == ask + 50 * TICK and stop["actualOrderId"] == ""
            event = await stream.next("ALGO_UPDATE")
            assert (event["o"]["aid"], event["o"]["X"], event["o"]["caid"]) == (stop["algoId"], "NEW", "sl-1")
            limit = await c.ok(
                "POST",
                "/fapi/v1/algoOrder",
                {**base, "type": "TAKE_PROFIT", "price": bid - 50 * TICK, "triggerPrice": bid - 50 * TICK},
            )
            assert limit["orderType"] == "TAKE_PROFIT" and limit["timeInForce"] == "GTC"
            # not regular orders until they trigger
            assert await c.ok("GET", "/fapi/v1/openOrders", {"symbol": "BTCUSDT"}) == []
            opened = await c.ok("GET", "/fapi/v1/openAlgoOrders", {"symbol": "BTCUSDT"})
            assert [a["algoId"] for a in opened] == [stop["algoId"], limit["algoId"]]
            query = await c.ok("GET", "/fapi/v1/algoOrder", {"clientAlgoId": "sl-1"})
            assert query["algoId"] == stop["algoId"]
            cancel = await c.ok("DELETE", "/fapi/v1/algoOrder", {"algoId": stop["algoId"]})
            assert cancel == {"algoId": stop["algoId"], "clientAlgoId": "sl-1", "code": "200", "msg": "success"}
            event = await stream.next("ALGO_UPDATE", where=lambda e: e["o"]["X"] == "CANCELED")
            assert event["o"]["aid"] == stop["algoId"]
            status, body, _ = await c.call("DELETE", "/fapi/v1/algoOrder", {"algoId": stop["algoId"]})
            assert (status, body["code"]) == (400, -2011)
            done = await c.ok("DELETE", "/fapi/v1/algoOpenOrders", {"symbol": "BTCUSDT"})
            assert done["code"] == 200
            assert await c.ok("GET", "/fapi/v1/openAlgoOrders") == []
            history = await c.ok("GET", "/fapi/v1/allAlgoOrders", {"symbol": "BTCUSDT"})
            assert [a["algoStatus"] for a in history] == ["CANCELED", "CANCELED"]
            assert not any(e.get("e") == "ORDER_TRADE_UPDATE" for e in stream.events)


async def test_algo_refusals(make_trading_sim: SimFactory) -> None:
    async with make_trading_sim(rates=QUIET, markets=(FUTURES,)) as sim, client(sim) as c:
        bid, ask = best(sim, FUTURES)
        quantity = quantity_for(Decimal(150), ask, STEP)
        base = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "BUY", "quantity": quantity}
        cases: list[tuple[dict[str, Any], int]] = [
            ({**base, "type": "STOP_MARKET", "triggerPrice": bid - 50 * TICK}, -2021),  # would trigger at once
            ({**base, "type": "STOP_MARKET"}, -1102),
            ({**base, "type": "LIMIT", "price": bid, "timeInForce": "GTC"}, -1116),
            ({**base, "algoType": "VP", "type": "STOP_MARKET", "triggerPrice": ask + TICK}, -1100),
            ({**base, "type": "TRAILING_STOP_MARKET", "callbackRate": "20"}, -2007),
            ({**base, "type": "TRAILING_STOP_MARKET", "callbackRate": "1", "activatePrice": ask + 50 * TICK}, -2021),
            ({**base, "type": "STOP_MARKET", "triggerPrice": ask + TICK, "closePosition": "true"}, -1106),
        ]
        for params, code in cases:
            status, body, _ = await c.call("POST", "/fapi/v1/algoOrder", params)
            assert status == 400 and body["code"] == code, (params, body)
        status, body, _ = await c.call("GET", "/fapi/v1/algoOrder", {"algoId": 1})
        assert (status, body["code"]) == (400, -2013)


async def _bracket(c: SignedClient, sim: Any, quantity: Decimal) -> dict[int, dict[str, Any]]:
    """A reduce-only stop one tick below and a take-profit one tick above the last price: whichever
    way the market moves next, one of them triggers (the market may move before both are placed)."""
    engine = sim.trading.engine
    placed: dict[int, dict[str, Any]] = {}
    base = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL", "quantity": quantity, "reduceOnly": "true"}
    for kind, offset in (("STOP_MARKET", -TICK), ("TAKE_PROFIT_MARKET", TICK)):
        for _ in range(50):
            trigger = engine.last_price(FUTURES, "BTCUSDT") + offset
            status, algo, _ = await c.call(
                "POST", "/fapi/v1/algoOrder", {**base, "type": kind, "triggerPrice": trigger}
            )
            if status == 200:
                placed[algo["algoId"]] = algo
                break
            assert algo["code"] == -2021, algo  # the price moved past the trigger: try again
            await asyncio.sleep(0.01)
    assert placed
    return placed


async def test_a_stop_triggers_places_its_order_and_finishes(make_trading_sim: SimFactory) -> None:
    async with make_trading_sim(rates=BUSY, markets=(FUTURES,)) as sim, client(sim) as c:
        _, ask = best(sim, FUTURES)
        quantity = quantity_for(Decimal(150), ask, STEP)
        key = (await c.ok("POST", "/fapi/v1/listenKey", signed=False))["listenKey"]
        async with user_stream(futures_stream_url(sim, key)) as stream:
            await c.ok(
                "POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": quantity}
            )
            placed = await _bracket(c, sim, quantity)
            triggering = await stream.next("ALGO_UPDATE", timeout=20.0, where=lambda e: e["o"]["X"] == "TRIGGERING")
            fired = placed[triggering["o"]["aid"]]
            triggered = await stream.next("ALGO_UPDATE", where=lambda e: e["o"]["X"] == "TRIGGERED")
            order_id = int(triggered["o"]["ai"])
            assert triggered["o"]["aid"] == fired["algoId"] and triggered["o"]["tt"] > 0
            placed = await stream.next("ORDER_TRADE_UPDATE", where=lambda e: e["o"]["i"] == order_id)
            assert (placed["o"]["x"], placed["o"]["o"], placed["o"]["ot"]) == ("NEW", "MARKET", fired["orderType"])
            filled = await stream.next("ORDER_TRADE_UPDATE", where=lambda e: e["o"]["X"] == "FILLED")
            assert filled["o"]["i"] == order_id and Decimal(filled["o"]["z"]) == quantity
            flat = await stream.next("ACCOUNT_UPDATE", where=lambda e: Decimal(e["a"]["P"][0]["pa"]) == 0)
            assert flat["a"]["P"][0]["s"] == "BTCUSDT"
            finished = await stream.next("ALGO_UPDATE", where=lambda e: e["o"]["X"] == "FINISHED")
            assert finished["o"]["aid"] == fired["algoId"] and Decimal(finished["o"]["aq"]) == quantity
        query = await c.ok("GET", "/fapi/v1/algoOrder", {"algoId": fired["algoId"]})
        assert (query["algoStatus"], query["actualOrderId"]) == ("FINISHED", str(order_id))
        order = await c.ok("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": order_id})
        assert (order["status"], order["type"], order["origType"]) == ("FILLED", "MARKET", fired["orderType"])
        assert await c.ok("GET", "/fapi/v3/positionRisk") == [] or all(
            Decimal(r["positionAmt"]) == 0 for r in await c.ok("GET", "/fapi/v3/positionRisk")
        )
