"""Spot order life cycles over real sockets: REST answers, user-data events and account state agree,
and orders meet the same book the market-data half serves."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from kestrel.core.enums import Market
from tests.sim.trading.conftest import (
    BUSY,
    QUIET,
    SimFactory,
    best,
    client,
    quantity_for,
    spot_stream_url,
    user_stream,
)

SPOT = Market.SPOT
STEP = Decimal("0.00001")


# enough quote to sweep a whole synthetic level, whatever its size
RICH = Decimal(10**12)
RICH_TRADING = {"default_spot_balances": {"USDT": RICH, "BTC": Decimal(1)}}


async def test_market_buy_fills_at_the_book_and_reports_it(make_trading_sim: SimFactory) -> None:
    async with make_trading_sim(rates=QUIET, markets=(SPOT,), trading=dict(RICH_TRADING)) as sim, client(sim) as c:
        book = sim.book(SPOT, "BTCUSDT", limit=5)
        (ask1, size1), (ask2, _) = book.asks[0], book.asks[1]
        quantity = size1 + quantity_for(Decimal(10), ask2, STEP)  # sweeps the first level into the second
        key = (await c.ok("POST", "/api/v3/userDataStream", signed=False))["listenKey"]
        async with user_stream(spot_stream_url(sim, key)) as stream:
            order = await c.ok(
                "POST",
                "/api/v3/order",
                {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": quantity, "newClientOrderId": "m-1"},
            )
            assert order["status"] == "FILLED" and order["clientOrderId"] == "m-1"
            fills = [(Decimal(f["price"]), Decimal(f["qty"])) for f in order["fills"]]
            assert fills == [(ask1, size1), (ask2, quantity - size1)]
            for fill in order["fills"]:  # spot buys pay commission in the base asset, 0.1 % at VIP 0
                assert Decimal(fill["commission"]) == Decimal(fill["qty"]) * Decimal("0.001")
                assert fill["commissionAsset"] == "BTC"
            quote = sum(price * qty for price, qty in fills)
            assert Decimal(order["cummulativeQuoteQty"]) == quote
            new = await stream.next("executionReport")
            assert (new["x"], new["X"], new["i"], new["c"]) == ("NEW", "NEW", order["orderId"], "m-1")
            trades = [await stream.next("executionReport") for _ in fills]
            assert [(Decimal(t["L"]), Decimal(t["l"])) for t in trades] == fills
            assert [t["X"] for t in trades] == ["PARTIALLY_FILLED", "FILLED"]
            assert Decimal(trades[-1]["Z"]) == quote and trades[-1]["t"] > 0
            position = await stream.next("outboundAccountPosition")
        account = await c.ok("GET", "/api/v3/account")
        balances = {b["asset"]: Decimal(b["free"]) for b in account["balances"]}
        fee = sum((qty * Decimal("0.001") for _, qty in fills), start=Decimal(0))
        assert balances["BTC"] == 1 + quantity - fee
        assert balances["USDT"] == RICH - quote
        assert {b["a"]: Decimal(b["f"]) for b in position["B"]}["USDT"] <= balances["USDT"] + quote
        trades = await c.ok("GET", "/api/v3/myTrades", {"symbol": "BTCUSDT"})
        assert [(Decimal(t["price"]), Decimal(t["qty"])) for t in trades] == fills
        assert all(t["isBuyer"] and not t["isMaker"] and t["orderId"] == order["orderId"] for t in trades)
        assert [t["id"] for t in trades] == [f["tradeId"] for f in order["fills"]]
        assert await c.ok("GET", "/api/v3/myTrades", {"symbol": "BTCUSDT", "fromId": trades[1]["id"]}) == trades[1:]


async def test_limit_rests_is_queried_and_cancelled(make_trading_sim: SimFactory) -> None:
    async with make_trading_sim(rates=QUIET, markets=(SPOT,)) as sim, client(sim) as c:
        bid, _ = best(sim, SPOT)
        quantity = quantity_for(Decimal(20), bid, STEP)
        key = (await c.ok("POST", "/api/v3/userDataStream", signed=False))["listenKey"]
        async with user_stream(spot_stream_url(sim, key)) as stream:
            params = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": quantity}
            order = await c.ok("POST", "/api/v3/order", {**params, "price": bid, "newClientOrderId": "rest-1"})
            assert order["status"] == "NEW" and order["fills"] == []
            new = await stream.next("executionReport")
            assert (new["x"], new["w"], Decimal(new["p"])) == ("NEW", True, bid)
            locked = await stream.next("outboundAccountPosition")
            assert {b["a"]: Decimal(b["l"]) for b in locked["B"]}["USDT"] == bid * quantity
            # duplicate client id among open orders
            status, body, _ = await c.call(
                "POST", "/api/v3/order", {**params, "price": bid, "newClientOrderId": "rest-1"}
            )
            assert (status, body) == (400, {"code": -2010, "msg": "Duplicate order sent."})
            query = await c.ok("GET", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "rest-1"})
            assert query["status"] == "NEW" and query["isWorking"] and query["orderId"] == order["orderId"]
            assert [o["orderId"] for o in await c.ok("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"})] == [
                order["orderId"]
            ]
            cancel = await c.ok(
                "DELETE",
                "/api/v3/order",
                {"symbol": "BTCUSDT", "orderId": order["orderId"], "newClientOrderId": "cx-1"},
            )
            assert (cancel["status"], cancel["origClientOrderId"], cancel["clientOrderId"]) == (
                "CANCELED",
                "rest-1",
                "cx-1",
            )
            cancelled = await stream.next("executionReport")
            assert (cancelled["x"], cancelled["X"], cancelled["c"], cancelled["C"]) == (
                "CANCELED",
                "CANCELED",
                "cx-1",
                "rest-1",
            )
            released = await stream.next("outboundAccountPosition")
            assert {b["a"]: Decimal(b["l"]) for b in released["B"]}["USDT"] == 0
        assert await c.ok("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}) == []
        history = await c.ok("GET", "/api/v3/allOrders", {"symbol": "BTCUSDT"})
        assert [(o["clientOrderId"], o["status"]) for o in history] == [("rest-1", "CANCELED")]
        # the id is free again once the order is closed
        again = await c.ok("POST", "/api/v3/order", {**params, "price": bid, "newClientOrderId": "rest-1"})
        assert again["status"] == "NEW"


async def test_spot_refusals_carry_the_exchange_codes(make_trading_sim: SimFactory) -> None:
    async with make_trading_sim(rates=QUIET, markets=(SPOT,)) as sim, client(sim) as c:
        bid, ask = best(sim, SPOT)
        quantity = quantity_for(Decimal(20), ask, STEP)
        base = {"symbol": "BTCUSDT", "side": "BUY", "quantity": quantity}
        too_much = quantity_for(Decimal(200_000), bid, STEP)  # twice the USDT balance
        lot_size = "Filter failure: LOT_SIZE"
        cases = [
            ({**base, "type": "LIMIT_MAKER", "price": ask}, -2010, "Order would immediately match and take."),
            ({**base, "type": "LIMIT", "timeInForce": "GTC", "price": bid, "quantity": too_much}, -2010, None),
            ({**base, "type": "LIMIT", "timeInForce": "GTC", "price": bid + Decimal("0.001")}, -1013, None),
            ({**base, "type": "LIMIT", "timeInForce": "GTC", "price": bid, "quantity": "0.000000001"}, -1111, None),
            ({**base, "type": "LIMIT", "timeInForce": "GTC", "price": bid, "quantity": "0.000001"}, -1013, lot_size),
            ({**base, "type": "LIMIT", "price": bid}, -1102, None),
            ({**base, "type": "FANCY"}, -1116, "Invalid orderType."),
            ({**base, "side": "UP", "type": "MARKET"}, -1117, "Invalid side."),
            ({**base, "type": "LIMIT", "timeInForce": "GTX", "price": bid}, -1115, None),
            ({**base, "symbol": "NOPEUSDT", "type": "MARKET"}, -1121, "Invalid symbol."),
            ({**base, "type": "STOP_LOSS", "stopPrice": bid}, -2010, "Order would trigger immediately."),
        ]
        for params, code, message in cases:
            status, body, _ = await c.call("POST", "/api/v3/order", params)
            assert status == 400 and body["code"] == code, (params, body)
            if message is not None:
                assert body["msg"] == message
        status, body, _ = await c.call("DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": 999})
        assert (status, body) == (400, {"code": -2011, "msg": "Unknown order sent."})
        status, body, _ = await c.call("GET", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": 999})
        assert (status, body) == (400, {"code": -2013, "msg": "Order does not exist."})
        assert sim.stats()["trading"]["orders_placed"] == 0


async def test_ioc_and_fok_expire_what_the_book_cannot_fill(make_trading_sim: SimFactory) -> None:
    async with make_trading_sim(rates=QUIET, markets=(SPOT,), trading=dict(RICH_TRADING)) as sim, client(sim) as c:
        book = sim.book(SPOT, "BTCUSDT", limit=2)
        ask1, size1 = book.asks[0]
        ask2 = book.asks[1][0]
        quantity = size1 + quantity_for(Decimal(10), ask2, STEP)
        base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "price": ask1, "quantity": quantity}
        ioc = await c.ok("POST", "/api/v3/order", {**base, "timeInForce": "IOC"})
        assert ioc["status"] == "EXPIRED"
        assert Decimal(ioc["executedQty"]) == size1 and [Decimal(f["price"]) for f in ioc["fills"]] == [ask1]
        # the level we took stays gone in the engine's copy until the market updates it: FOK now sees
        # only the second level at a worse price than its limit, so nothing fills
        fok = await c.ok("POST", "/api/v3/order", {**base, "timeInForce": "FOK"})
        assert fok["status"] == "EXPIRED" and Decimal(fok["executedQty"]) == 0


async def test_resting_limit_fills_when_the_market_trades_through(make_trading_sim: SimFactory) -> None:
    """A buy one tick above the best bid is first in line: the next sell taker trades through it."""
    async with make_trading_sim(rates=BUSY, markets=(SPOT,)) as sim, client(sim) as c:
        key = (await c.ok("POST", "/api/v3/userDataStream", signed=False))["listenKey"]
        async with user_stream(spot_stream_url(sim, key)) as stream:
            for _ in range(5):
                bid, ask = best(sim, SPOT)
                price = bid + Decimal("0.01")
                if price >= ask:
                    await asyncio.sleep(0.05)
                    continue
                status, order, _ = await c.call(
                    "POST",
                    "/api/v3/order",
                    {
                        "symbol": "BTCUSDT",
                        "side": "BUY",
                        "type": "LIMIT",
                        "timeInForce": "GTC",
                        "price": price,
                        "quantity": quantity_for(Decimal(10), price, STEP),
                    },
                )
                if status == 200:
                    break
            assert order["status"] == "NEW"
            trade = await stream.next("executionReport", timeout=20.0, where=lambda e: e["x"] == "TRADE")
            assert trade["m"] is True and Decimal(trade["L"]) == price  # a maker fill at our price
            assert Decimal(trade["n"]) == Decimal(trade["l"]) * Decimal("0.001")
        query = await c.ok("GET", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": order["orderId"]})
        assert Decimal(query["executedQty"]) >= Decimal(trade["l"])
        assert query["status"] in ("PARTIALLY_FILLED", "FILLED")


async def test_quote_sized_market_order_test_order_and_cancel_all(make_trading_sim: SimFactory) -> None:
    async with make_trading_sim(rates=QUIET, markets=(SPOT,)) as sim, client(sim) as c:
        bid, ask = best(sim, SPOT)
        bought = await c.ok(
            "POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quoteOrderQty": "25"}
        )
        assert bought["status"] == "FILLED" and Decimal(bought["origQuoteOrderQty"]) == 25
        assert Decimal(bought["cummulativeQuoteQty"]) <= 25
        assert Decimal(bought["cummulativeQuoteQty"]) > 25 - ask * STEP  # all but less than one lot's worth
        limit = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
        limit["quantity"] = str(quantity_for(Decimal(20), bid, STEP))
        assert await c.ok("POST", "/api/v3/order/test", {**limit, "price": bid}) == {}
        status, body, _ = await c.call("POST", "/api/v3/order/test", {**limit, "price": "0.001"})
        assert (status, body["code"]) == (400, -1013)
        assert await c.ok("GET", "/api/v3/openOrders") == []  # the test order placed nothing
        for offset in (1, 2, 3):
            await c.ok("POST", "/api/v3/order", {**limit, "price": bid - offset * Decimal("0.01")})
        cancelled = await c.ok("DELETE", "/api/v3/openOrders", {"symbol": "BTCUSDT"})
        assert [o["status"] for o in cancelled] == ["CANCELED"] * 3
        assert await c.ok("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}) == []
        account = await c.ok("GET", "/api/v3/account", {"omitZeroBalances": "true"})
        assert all(Decimal(b["locked"]) == 0 for b in account["balances"])


async def test_stop_loss_triggers_works_and_fills(make_trading_sim: SimFactory) -> None:
    """A spot STOP_LOSS (market on trigger) one tick below the last price: when the market trades at or
    below it the order starts working (executionReport NEW, w=true, W=trigger time) and fills at once."""
    async with make_trading_sim(rates=BUSY, markets=(SPOT,)) as sim, client(sim) as c:
        key = (await c.ok("POST", "/api/v3/userDataStream", signed=False))["listenKey"]
        engine = sim.trading.engine
        async with user_stream(spot_stream_url(sim, key)) as stream:
            await c.ok("GET", "/api/v3/account")  # nothing yet: the symbol is activated by the first order
            for _ in range(50):
                sim.trading.activate(SPOT, "BTCUSDT", sim.trading.sync())
                last = engine.last_price(SPOT, "BTCUSDT")
                assert last is not None
                params = {"symbol": "BTCUSDT", "side": "SELL", "type": "STOP_LOSS", "quantity": "0.3"}
                params["newOrderRespType"] = "RESULT"  # stops answer ACK by default
                status, order, _ = await c.call(
                    "POST", "/api/v3/order", {**params, "stopPrice": last - Decimal("0.01")}
                )
                if status == 200:
                    break
                assert order["code"] == -2010  # the price moved through the stop first: try again
            assert order["status"] == "NEW" and order["type"] == "STOP_LOSS"
            placed = await stream.next("executionReport")
            assert (placed["x"], placed["w"], placed["W"]) == ("NEW", False, -1)
            working = await stream.next("executionReport", timeout=20.0, where=lambda e: e["w"] is True)
            assert (working["x"], working["i"]) == ("NEW", order["orderId"]) and working["W"] > 0
            trade = await stream.next("executionReport", where=lambda e: e["x"] == "TRADE")
            assert trade["m"] is False and Decimal(trade["L"]) <= last  # a taker fill at the bid
        query = await c.ok("GET", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": order["orderId"]})
        assert query["isWorking"] is True and query["workingTime"] == working["W"]


async def test_amend_keeps_priority_and_reports_replaced(make_trading_sim: SimFactory) -> None:
    async with make_trading_sim(rates=QUIET, markets=(SPOT,)) as sim, client(sim) as c:
        bid, _ = best(sim, SPOT)
        quantity = quantity_for(Decimal(40), bid, STEP)
        key = (await c.ok("POST", "/api/v3/userDataStream", signed=False))["listenKey"]
        async with user_stream(spot_stream_url(sim, key)) as stream:
            params = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "price": bid}
            order = await c.ok("POST", "/api/v3/order", {**params, "quantity": quantity, "newClientOrderId": "am-1"})
            smaller = quantity_for(Decimal(20), bid, STEP)
            amend = {"symbol": "BTCUSDT", "origClientOrderId": "am-1"}
            status, answer, headers = await c.call(
                "PUT", "/api/v3/order/amend/keepPriority", {**amend, "newQty": smaller}
            )
            assert status == 200 and headers["X-MBX-USED-WEIGHT-1M"] == str(2 + 1 + 4)  # listenKey, order, amend
            amended = answer["amendedOrder"]
            assert (amended["orderId"], Decimal(amended["qty"]), amended["status"]) == (
                order["orderId"],
                smaller,
                "NEW",
            )
            replaced = await stream.next("executionReport", where=lambda e: e["x"] == "REPLACED")
            assert (replaced["X"], Decimal(replaced["q"]), replaced["I"]) == ("NEW", smaller, answer["executionId"])
            released = await stream.next("outboundAccountPosition", where=lambda e: e is not None)
            assert released["e"] == "outboundAccountPosition"
            status, body, _ = await c.call("PUT", "/api/v3/order/amend/keepPriority", {**amend, "newQty": quantity})
            assert (status, body["code"]) == (400, -2038)
        query = await c.ok("GET", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": order["orderId"]})
        assert Decimal(query["origQty"]) == smaller
        account = await c.ok("GET", "/api/v3/account")
        locked = {b["asset"]: Decimal(b["locked"]) for b in account["balances"]}
        assert locked["USDT"] == smaller * bid  # the lock follows the smaller order
