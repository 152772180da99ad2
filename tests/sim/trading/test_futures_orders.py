"""USD-M orders and account over real sockets: REST answers, ORDER_TRADE_UPDATE / ACCOUNT_UPDATE and
positions agree; refusals carry the exchange's codes."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from kestrel.core.enums import Market
from tests.sim.trading.conftest import (
    QUIET,
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
TAKER = Decimal("0.0005")  # VIP 0 USD-M taker rate


async def test_market_order_opens_a_position_reported_everywhere(make_trading_sim: SimFactory) -> None:
    async with make_trading_sim(rates=QUIET, markets=(FUTURES,)) as sim, client(sim) as c:
        book = sim.book(FUTURES, "BTCUSDT", limit=3)
        ask1, size1 = book.asks[0]
        ask2 = book.asks[1][0]
        quantity = size1 + quantity_for(Decimal(150), ask2, STEP)
        key = (await c.ok("POST", "/fapi/v1/listenKey", signed=False))["listenKey"]
        async with user_stream(futures_stream_url(sim, key)) as stream:
            params = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": quantity}
            order = await c.ok("POST", "/fapi/v1/order", {**params, "newOrderRespType": "RESULT"}, in_body=True)
            assert (order["status"], order["type"], order["positionSide"]) == ("FILLED", "MARKET", "BOTH")
            quote = ask1 * size1 + ask2 * (quantity - size1)
            assert Decimal(order["cumQuote"]) == quote and Decimal(order["executedQty"]) == quantity
            assert Decimal(order["avgPrice"]) == (quote / quantity).quantize(Decimal("1e-8"))
            new = await stream.next("ORDER_TRADE_UPDATE")
            assert (new["o"]["x"], new["o"]["X"], new["o"]["i"]) == ("NEW", "NEW", order["orderId"])
            first = await stream.next("ORDER_TRADE_UPDATE")
            assert (first["o"]["x"], Decimal(first["o"]["L"]), Decimal(first["o"]["l"])) == ("TRADE", ask1, size1)
            assert Decimal(first["o"]["n"]) == ask1 * size1 * TAKER and first["o"]["N"] == "USDT"
            update = await stream.next("ACCOUNT_UPDATE")
            assert update["a"]["m"] == "ORDER" and update["E"] == first["E"]
            second = await stream.next("ORDER_TRADE_UPDATE")
            assert second["o"]["X"] == "FILLED" and Decimal(second["o"]["z"]) == quantity
            final = await stream.next("ACCOUNT_UPDATE")
            position = final["a"]["P"][0]
            assert (position["s"], Decimal(position["pa"]), position["mt"]) == ("BTCUSDT", quantity, "cross")
            wallet = Decimal(final["a"]["B"][0]["wb"])
        assert wallet == 100_000 - quote * TAKER
        risk = await c.ok("GET", "/fapi/v3/positionRisk")
        assert [(r["symbol"], Decimal(r["positionAmt"])) for r in risk] == [("BTCUSDT", quantity)]
        assert Decimal(risk[0]["entryPrice"]) == (quote / quantity).quantize(Decimal("1e-8"))
        legacy = await c.ok("GET", "/fapi/v2/positionRisk", {"symbol": "BTCUSDT"})
        assert legacy[0]["leverage"] == "20" and legacy[0]["marginType"] == "cross"
        for path in ("/fapi/v2/balance", "/fapi/v3/balance"):
            balances = await c.ok("GET", path)
            assert [(b["asset"], Decimal(b["balance"])) for b in balances] == [("USDT", wallet)]
        account = await c.ok("GET", "/fapi/v3/account")
        assert Decimal(account["totalWalletBalance"]) == wallet
        assert [p["symbol"] for p in account["positions"]] == ["BTCUSDT"]
        # closing with a reduce-only market order realises the PnL; the position is flat again
        close = {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": quantity, "reduceOnly": "true"}
        closed = await c.ok("POST", "/fapi/v1/order", {**close, "newOrderRespType": "RESULT"})
        assert closed["status"] == "FILLED" and closed["reduceOnly"] is True
        assert await c.ok("GET", "/fapi/v3/positionRisk") == []
        trades = await c.ok("GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT"})
        assert [t["side"] for t in trades][:2] == ["BUY", "BUY"] and trades[-1]["side"] == "SELL"
        assert sum(Decimal(t["qty"]) for t in trades if t["side"] == "SELL") == quantity
        realized = sum(Decimal(t["realizedPnl"]) for t in trades)
        closing = await c.ok("GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT", "orderId": closed["orderId"]})
        assert realized == sum(Decimal(t["realizedPnl"]) for t in closing) != 0


async def test_futures_refusals_carry_the_exchange_codes(make_trading_sim: SimFactory) -> None:
    async with make_trading_sim(rates=QUIET, markets=(FUTURES,)) as sim, client(sim) as c:
        book = sim.book(FUTURES, "BTCUSDT", limit=2)
        bid, ask = book.bids[0][0], book.asks[0][0]
        ask_size = book.asks[0][1]
        quantity = quantity_for(Decimal(150), ask, STEP)
        base = {"symbol": "BTCUSDT", "side": "BUY", "quantity": quantity}
        limit = {**base, "type": "LIMIT", "timeInForce": "GTC", "price": bid}
        await c.ok("POST", "/fapi/v1/order", {**limit, "newClientOrderId": "dup-1"})
        cases = [
            ({**base, "type": "STOP_MARKET", "stopPrice": ask + 10 * TICK}, -4120),
            ({**base, "type": "TAKE_PROFIT", "price": bid, "stopPrice": bid}, -4120),
            ({**base, "type": "LIMIT", "timeInForce": "GTX", "price": ask}, -5022),
            ({**base, "type": "LIMIT", "timeInForce": "FOK", "price": ask, "quantity": ask_size + quantity}, -5021),
            ({**limit, "newClientOrderId": "dup-1"}, -4116),
            ({**base, "side": "SELL", "type": "MARKET", "reduceOnly": "true"}, -2022),
            ({**limit, "positionSide": "LONG"}, -4061),
            ({**limit, "quantity": "0.0001"}, -1111),
            ({**limit, "quantity": "0.001"}, -4164),
            ({**limit, "price": bid + Decimal("0.05")}, -4014),
            ({**limit, "price": bid + Decimal("0.001")}, -1111),
            ({**limit, "price": bid * 2}, -4016),
            ({**base, "type": "LIMIT", "price": bid}, -1102),
        ]
        for params, code in cases:
            status, body, _ = await c.call("POST", "/fapi/v1/order", params)
            assert status == 400 and body["code"] == code, (params, body)
        status, body, _ = await c.call("POST", "/fapi/v1/order", {**base, "type": "STOP_MARKET", "stopPrice": ask})
        assert (
            body["msg"]
            == "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead."
        )
        status, body, _ = await c.call("POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 126})
        assert (status, body["code"]) == (400, -4028)
        status, body, _ = await c.call("POST", "/fapi/v1/marginType", {"symbol": "BTCUSDT", "marginType": "CROSSED"})
        assert (status, body) == (400, {"code": -4046, "msg": "No need to change margin type."})
        status, body, _ = await c.call("POST", "/fapi/v1/marginType", {"symbol": "BTCUSDT", "marginType": "ISOLATED"})
        assert (status, body["code"]) == (400, -4047)  # an order is open
        status, body, _ = await c.call("DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": 12345})
        assert (status, body) == (400, {"code": -2011, "msg": "Unknown order sent."})


async def test_limit_order_life_cycle_and_cancel_all(make_trading_sim: SimFactory) -> None:
    async with make_trading_sim(rates=QUIET, markets=(FUTURES,)) as sim, client(sim) as c:
        bid, _ = best(sim, FUTURES)
        quantity = quantity_for(Decimal(150), bid, STEP)
        key = (await c.ok("POST", "/fapi/v1/listenKey", signed=False))["listenKey"]
        async with user_stream(futures_stream_url(sim, key)) as stream:
            params = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": quantity}
            first = await c.ok("POST", "/fapi/v1/order", {**params, "price": bid, "newClientOrderId": "f-1"})
            second = await c.ok("POST", "/fapi/v1/order", {**params, "price": bid - TICK})
            assert first["status"] == "NEW" and first["clientOrderId"] == "f-1"
            new = await stream.next("ORDER_TRADE_UPDATE")
            assert new["o"]["c"] == "f-1" and Decimal(new["o"]["b"]) == bid * quantity
            query = await c.ok("GET", "/fapi/v1/openOrder", {"symbol": "BTCUSDT", "origClientOrderId": "f-1"})
            assert query["orderId"] == first["orderId"] and query["time"] > 0
            opened = await c.ok("GET", "/fapi/v1/openOrders", {"symbol": "BTCUSDT"})
            assert [o["orderId"] for o in opened] == [first["orderId"], second["orderId"]]
            risk = await c.ok("GET", "/fapi/v3/positionRisk")  # open orders without a position
            assert risk[0]["symbol"] == "BTCUSDT" and Decimal(risk[0]["bidNotional"]) > 0
            cancelled = await c.ok("DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": first["orderId"]})
            assert cancelled["status"] == "CANCELED"
            event = await stream.next("ORDER_TRADE_UPDATE", where=lambda e: e["o"]["x"] == "CANCELED")
            assert event["o"]["i"] == first["orderId"]
            done = await c.ok("DELETE", "/fapi/v1/allOpenOrders", {"symbol": "BTCUSDT"})
            assert done["code"] == 200
            event = await stream.next("ORDER_TRADE_UPDATE", where=lambda e: e["o"]["x"] == "CANCELED")
            assert event["o"]["i"] == second["orderId"]
            # an ACCOUNT_UPDATE comes only when balances or positions change, not for these orders
            assert not any(e.get("e") == "ACCOUNT_UPDATE" for e in stream.events)
        status, body, _ = await c.call("GET", "/fapi/v1/openOrder", {"symbol": "BTCUSDT", "orderId": first["orderId"]})
        assert (status, body["code"]) == (400, -2013)
        history = await c.ok("GET", "/fapi/v1/allOrders", {"symbol": "BTCUSDT"})
        assert [o["status"] for o in history] == ["CANCELED", "CANCELED"]


async def test_leverage_margin_type_and_brackets(make_trading_sim: SimFactory) -> None:
    async with make_trading_sim(rates=QUIET, markets=(FUTURES,)) as sim, client(sim) as c:
        key = (await c.ok("POST", "/fapi/v1/listenKey", signed=False))["listenKey"]
        async with user_stream(futures_stream_url(sim, key)) as stream:
            answer = await c.ok("POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 10})
            assert answer == {"leverage": 10, "maxNotionalValue": "230000000", "symbol": "BTCUSDT"}
            event = await stream.next("ACCOUNT_CONFIG_UPDATE")
            assert event["ac"] == {"s": "BTCUSDT", "l": 10}
            answer = await c.ok("POST", "/fapi/v1/marginType", {"symbol": "BTCUSDT", "marginType": "ISOLATED"})
            assert answer == {"code": 200, "msg": "success"}
            event = await stream.next("ACCOUNT_UPDATE")
            assert event["a"]["m"] == "MARGIN_TYPE_CHANGE" and event["a"]["P"][0]["mt"] == "isolated"
        risk = await c.ok("GET", "/fapi/v2/positionRisk", {"symbol": "BTCUSDT"})
        assert (risk[0]["leverage"], risk[0]["marginType"]) == ("10", "isolated")
        brackets = await c.ok("GET", "/fapi/v1/leverageBracket", {"symbol": "BTCUSDT"})
        assert brackets["symbol"] == "BTCUSDT" and brackets["brackets"][0]["initialLeverage"] == 125
        everything = await c.ok("GET", "/fapi/v1/leverageBracket")
        assert [entry["symbol"] for entry in everything] == ["BTCUSDT", "ETHUSDT"]
        assert await c.ok("GET", "/fapi/v1/positionSide/dual") == {"dualSidePosition": False}


async def test_funding_is_settled_at_the_funding_time(make_trading_sim: SimFactory) -> None:
    """The simulator starts 3 s before 08:00 UTC; a long position pays mark × quantity × rate at 08:00,
    at the rate and mark the REST funding history records."""
    funding_ms = 1_767_225_600_000 + 8 * 3_600_000  # 2026-01-01 08:00 UTC
    async with (
        make_trading_sim(rates=QUIET, markets=(FUTURES,), start_time_ms=funding_ms - 3000) as sim,
        client(sim) as c,
    ):
        _, ask = best(sim, FUTURES)
        quantity = quantity_for(Decimal(150), ask, STEP)
        key = (await c.ok("POST", "/fapi/v1/listenKey", signed=False))["listenKey"]
        async with user_stream(futures_stream_url(sim, key)) as stream:
            await c.ok(
                "POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": quantity}
            )
            filled = await stream.next("ACCOUNT_UPDATE")
            before = Decimal(filled["a"]["B"][0]["wb"])
            funding = await stream.next("ACCOUNT_UPDATE", timeout=10.0, where=lambda e: e["a"]["m"] == "FUNDING_FEE")
            assert funding["a"]["P"] == []  # cross margin: balance only
            after = Decimal(funding["a"]["B"][0]["wb"])
        history = await c.ok("GET", "/fapi/v1/fundingRate", {"symbol": "BTCUSDT", "limit": 1}, signed=False)
        assert history[0]["fundingTime"] == funding_ms
        rate, mark = Decimal(history[0]["fundingRate"]), Decimal(history[0]["markPrice"])
        payment = -(quantity * mark * rate)
        assert payment != 0
        assert abs((after - before) - payment) <= Decimal("1e-8")  # the event prints 8 decimals


async def test_liquidation_is_reported_like_the_exchange(make_trading_sim: SimFactory) -> None:
    """A 125x long whose mark falls 10 %: the engine closes it at mark with a CALCULATED LIQUIDATION
    order (`autoclose-…`), and the user stream reports it as the exchange does."""
    from kestrel.core.events import MarkPrice

    async with make_trading_sim(rates=QUIET, markets=(FUTURES,)) as sim, client(sim) as c:
        _, ask = best(sim, FUTURES)
        quantity = quantity_for(Decimal(150), ask, STEP)
        await c.ok("POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 125})
        await c.ok("POST", "/fapi/v1/marginType", {"symbol": "BTCUSDT", "marginType": "ISOLATED"})
        key = (await c.ok("POST", "/fapi/v1/listenKey", signed=False))["listenKey"]
        async with user_stream(futures_stream_url(sim, key)) as stream:
            await c.ok(
                "POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": quantity}
            )
            await stream.next("ACCOUNT_UPDATE")
            desk = sim.trading
            now = desk.sync()
            crash = float(ask) * 0.9
            desk.dispatch(desk.engine.apply(MarkPrice(FUTURES, "BTCUSDT", crash, crash, crash, 0.0, 0, now, now)))
            liquidation = await stream.next("ORDER_TRADE_UPDATE", where=lambda e: e["o"]["x"] == "CALCULATED")
            order = liquidation["o"]
            assert (order["o"], order["ot"], order["f"], order["X"]) == ("LIQUIDATION", "LIQUIDATION", "IOC", "FILLED")
            assert order["c"].startswith("autoclose-") and order["S"] == "SELL" and Decimal(order["z"]) == quantity
            flat = await stream.next("ACCOUNT_UPDATE")
            assert Decimal(flat["a"]["P"][0]["pa"]) == 0 and flat["a"]["P"][0]["mt"] == "isolated"
        assert await c.ok("GET", "/fapi/v3/positionRisk") == []


async def test_resting_futures_limit_fills_when_the_market_trades_through(make_trading_sim: SimFactory) -> None:
    from tests.sim.trading.conftest import BUSY

    async with make_trading_sim(rates=BUSY, markets=(FUTURES,)) as sim, client(sim) as c:
        key = (await c.ok("POST", "/fapi/v1/listenKey", signed=False))["listenKey"]
        async with user_stream(futures_stream_url(sim, key)) as stream:
            for _ in range(200):  # a post-only sell one tick under the best ask: first in line for buyers
                bid, ask = best(sim, FUTURES)
                price = ask - TICK
                if price > bid:
                    params = {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTX"}
                    params["quantity"] = str(quantity_for(Decimal(150), price, STEP))
                    status, order, _ = await c.call("POST", "/fapi/v1/order", {**params, "price": price})
                    if status == 200:
                        break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("no room inside the spread")
            trade = await stream.next("ORDER_TRADE_UPDATE", timeout=20.0, where=lambda e: e["o"]["x"] == "TRADE")
            assert trade["o"]["i"] == order["orderId"] and trade["o"]["m"] is True
            assert Decimal(trade["o"]["n"]) == Decimal(trade["o"]["L"]) * Decimal(trade["o"]["l"]) * Decimal("0.0002")
            position = await stream.next("ACCOUNT_UPDATE")
            assert Decimal(position["a"]["P"][0]["pa"]) == -Decimal(trade["o"]["z"])  # short what was sold


async def test_modify_order_changes_price_and_quantity(make_trading_sim: SimFactory) -> None:
    async with make_trading_sim(rates=QUIET, markets=(FUTURES,)) as sim, client(sim) as c:
        bid, ask = best(sim, FUTURES)
        quantity = quantity_for(Decimal(150), bid, STEP)
        key = (await c.ok("POST", "/fapi/v1/listenKey", signed=False))["listenKey"]
        async with user_stream(futures_stream_url(sim, key)) as stream:
            params = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": quantity}
            order = await c.ok(
                "POST", "/fapi/v1/order", {**params, "price": bid - 5 * TICK, "newClientOrderId": "md-1"}
            )
            change = {"symbol": "BTCUSDT", "origClientOrderId": "md-1", "side": "BUY"}
            modified = await c.ok(
                "PUT", "/fapi/v1/order", {**change, "price": bid - 3 * TICK, "quantity": quantity * 2}
            )
            assert (Decimal(modified["price"]), Decimal(modified["origQty"])) == (bid - 3 * TICK, quantity * 2)
            event = await stream.next("ORDER_TRADE_UPDATE", where=lambda e: e["o"]["x"] == "AMENDMENT")
            assert (event["o"]["i"], Decimal(event["o"]["p"])) == (order["orderId"], bid - 3 * TICK)
            status, body, _ = await c.call(
                "PUT", "/fapi/v1/order", {**change, "price": bid - 3 * TICK, "quantity": quantity * 2}
            )
            assert (status, body["code"]) == (400, -5027)
            # a crossing price makes it a taker at once
            crossed = await c.ok("PUT", "/fapi/v1/order", {**change, "price": ask, "quantity": quantity})
            assert crossed["status"] in ("FILLED", "PARTIALLY_FILLED")
            trade = await stream.next("ORDER_TRADE_UPDATE", where=lambda e: e["o"]["x"] == "TRADE")
            assert trade["o"]["m"] is False and Decimal(trade["o"]["L"]) == ask
        status, body, _ = await c.call(
            "PUT", "/fapi/v1/order", {**change, "orderId": 999, "price": bid, "quantity": quantity}
        )
        assert (status, body["code"]) == (400, -2013)
