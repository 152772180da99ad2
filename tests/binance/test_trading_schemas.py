"""Trading translation both ways, on the example payloads of spec/binance-protocol.md §5-§6."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import parse_qsl

import pytest

from kestrel.binance.http.signing import encode_params
from kestrel.binance.schemas import trading
from kestrel.binance.schemas.trading_rest import (
    WireAlgoOrder,
    WireFuturesBalance,
    WireFuturesOrder,
    WireFuturesTrade,
    WirePositionRisk,
    WireSpotOrder,
    WireSpotOrderList,
    WireSpotTrade,
    convert,
    parse_algo_order,
    parse_futures_balance,
    parse_futures_order,
    parse_position_risk,
    parse_spot_order,
    parse_trade,
)
from kestrel.binance.schemas.user_data import (
    OtherFrame,
    WireAccountUpdate,
    WireAlgoUpdate,
    WireExecutionReport,
    WireListenKeyExpired,
    WireOrderTradeUpdate,
    WireOutboundAccountPosition,
    algo_update,
    decode_user_frame,
    futures_account_update,
    futures_order_update,
    spot_account_update,
    spot_order_update,
)
from kestrel.core.enums import LiquiditySide, MarginType, Market, OrderStatus, OrderType, Side, TimeInForce
from kestrel.core.errors import DataError
from kestrel.core.identifiers import ClientOrderId
from kestrel.core.venue import (
    AccountUpdateReason,
    Balance,
    ExecutionType,
    OcoLeg,
    OcoRequest,
    OrderRequest,
    PositionSnapshot,
    WorkingType,
)

D = Decimal
MS = 1_000_000
cid = ClientOrderId


def query(request: trading.WireRequest) -> dict[str, str]:
    return dict(parse_qsl(encode_params(request.params)))


# ---- core → wire -----------------------------------------------------------------------------------
def test_spot_orders_to_wire() -> None:
    limit = OrderRequest(Market.SPOT, "BTCUSDT", Side.BUY, OrderType.LIMIT, D("0.0100"), D("67812.010"),
                         time_in_force=TimeInForce.GTC, iceberg_quantity=D("0.002"))  # fmt: skip
    wire = trading.new_order(limit, cid("kst-1"))
    assert wire.endpoint == "new_order"
    assert query(wire) == {
        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01",
        "price": "67812.01", "icebergQty": "0.002", "newClientOrderId": "kst-1", "newOrderRespType": "FULL",
    }  # fmt: skip
    by_quote = OrderRequest(Market.SPOT, "BTCUSDT", Side.BUY, OrderType.MARKET, quote_order_quantity=D("100.50"))
    assert query(trading.new_order(by_quote, cid("a")))["quoteOrderQty"] == "100.5"
    assert "quantity" not in query(trading.new_order(by_quote, cid("a")))
    stop = OrderRequest(Market.SPOT, "BTCUSDT", Side.SELL, OrderType.STOP_LIMIT, D("1"), D("60000"),
                        stop_price=D("60100"), time_in_force=TimeInForce.GTC, trailing_delta_bips=150)  # fmt: skip
    params = query(trading.new_order(stop, cid("b")))
    assert params["type"] == "STOP_LOSS_LIMIT" and params["stopPrice"] == "60100" and params["trailingDelta"] == "150"
    maker = OrderRequest(Market.SPOT, "BTCUSDT", Side.SELL, OrderType.LIMIT_MAKER, D("1"), D("70000"))
    assert query(trading.new_order(maker, cid("c")))["type"] == "LIMIT_MAKER"
    take = OrderRequest(Market.SPOT, "BTCUSDT", Side.SELL, OrderType.TAKE_PROFIT_MARKET, D("1"), stop_price=D("7e4"))
    assert query(trading.new_order(take, cid("d"))) | {} == {
        "symbol": "BTCUSDT", "side": "SELL", "type": "TAKE_PROFIT", "quantity": "1", "stopPrice": "70000",
        "newClientOrderId": "d", "newOrderRespType": "FULL",
    }  # fmt: skip


def test_futures_orders_to_wire_plain_and_algo() -> None:
    post_only = OrderRequest(Market.FUTURES, "BTCUSDT", Side.BUY, OrderType.LIMIT, D("0.010"), D("67700.00"),
                             time_in_force=TimeInForce.GTX, reduce_only=True)  # fmt: skip
    wire = trading.new_order(post_only, cid("kst-f-000193"))
    assert wire.endpoint == "new_order"
    assert query(wire) == {
        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTX", "quantity": "0.01",
        "price": "67700", "reduceOnly": "true", "newClientOrderId": "kst-f-000193", "newOrderRespType": "RESULT",
    }  # fmt: skip
    close = OrderRequest(Market.FUTURES, "BTCUSDT", Side.SELL, OrderType.STOP_MARKET, stop_price=D("65000.0"),
                         close_position=True, working_type=WorkingType.MARK_PRICE)  # fmt: skip
    algo = trading.new_order(close, cid("sl-1"))
    assert algo.endpoint == "new_algo_order"
    assert query(algo) == {
        "algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET",
        "triggerPrice": "65000", "workingType": "MARK_PRICE", "closePosition": "true", "clientAlgoId": "sl-1",
    }  # fmt: skip
    trailing = OrderRequest(Market.FUTURES, "BTCUSDT", Side.SELL, OrderType.TRAILING_STOP_MARKET, D("0.5"),
                            trailing_callback_rate=D("1.0"), activation_price=D("70000"), reduce_only=True)  # fmt: skip
    params = query(trading.new_order(trailing, cid("t")))
    assert params["callbackRate"] == "1" and params["activatePrice"] == "70000" and params["reduceOnly"] == "true"
    stop_limit = OrderRequest(Market.FUTURES, "BTCUSDT", Side.BUY, OrderType.STOP_LIMIT, D("1"), D("70100"),
                              stop_price=D("70000"), good_till_ns=1_717_000_700_000 * MS,
                              time_in_force=TimeInForce.GTD)  # fmt: skip
    params = query(trading.new_order(stop_limit, cid("g")))
    assert params["type"] == "STOP" and params["goodTillDate"] == "1717000700000" and params["timeInForce"] == "GTD"
    take = OrderRequest(Market.FUTURES, "BTCUSDT", Side.BUY, OrderType.TAKE_PROFIT_LIMIT, D("1"), D("6"), D("6"))
    assert query(trading.new_order(take, cid("h")))["type"] == "TAKE_PROFIT"


def test_oco_cancel_query_modify_to_wire() -> None:
    oco = OcoRequest("BTCUSDT", Side.SELL, D("0.5"),
                     above=OcoLeg(OrderType.LIMIT_MAKER, price=D("70000"), client_order_id=cid("tp")),
                     below=OcoLeg(OrderType.STOP_LIMIT, price=D("64900"), stop_price=D("65000"),
                                  time_in_force=TimeInForce.GTC, client_order_id=cid("sl")))  # fmt: skip
    wire = trading.new_oco(oco, "list-1")
    assert wire.endpoint == "new_oco"
    assert query(wire) == {
        "symbol": "BTCUSDT", "side": "SELL", "quantity": "0.5", "listClientOrderId": "list-1",
        "aboveType": "LIMIT_MAKER", "aboveClientOrderId": "tp", "abovePrice": "70000",
        "belowType": "STOP_LOSS_LIMIT", "belowClientOrderId": "sl", "belowPrice": "64900", "belowStopPrice": "65000",
        "belowTimeInForce": "GTC", "newOrderRespType": "RESULT",
    }  # fmt: skip
    assert trading.cancel_order(Market.SPOT, "BTCUSDT", "x", algo=False).params == {
        "symbol": "BTCUSDT", "origClientOrderId": "x",
    }  # fmt: skip
    assert trading.cancel_order(Market.FUTURES, "BTCUSDT", "x", algo=True) == trading.WireRequest(
        "cancel_algo_order", {"clientAlgoId": "x"}
    )
    assert trading.query_order(Market.FUTURES, "BTCUSDT", "x", algo=True).endpoint == "query_algo_order"
    modify = trading.modify_order(Market.FUTURES, "BTCUSDT", "x", "BUY", D("1.50"), D("2"))
    assert query(modify) == {
        "symbol": "BTCUSDT",
        "origClientOrderId": "x",
        "side": "BUY",
        "quantity": "2",
        "price": "1.5",
    }
    assert trading.amend_quantity("BTCUSDT", "x", D("0.1")).endpoint == "amend_order"


def test_order_type_names_round_trip() -> None:
    for order_type in OrderType:
        assert trading.core_order_type(Market.FUTURES, trading.FUTURES_WIRE_TYPE[order_type]) is order_type
        assert trading.core_order_type(Market.SPOT, trading.SPOT_WIRE_TYPE[order_type]) is order_type
    assert trading.core_order_type(Market.FUTURES, "LIQUIDATION") is OrderType.MARKET
    with pytest.raises(ValueError, match="unknown"):
        trading.core_order_type(Market.SPOT, "ICEBERG")


# ---- REST wire → core ------------------------------------------------------------------------------
SPOT_FULL = {
    "symbol": "BTCUSDT", "orderId": 41200987123, "orderListId": -1, "clientOrderId": "kst-7f3a9c01",
    "transactTime": 1717000005012, "price": "0.00000000", "origQty": "0.01500000", "executedQty": "0.01500000",
    "origQuoteOrderQty": "0.00000000", "cummulativeQuoteQty": "1017.18015000", "status": "FILLED",
    "timeInForce": "GTC", "type": "MARKET", "side": "BUY", "workingTime": 1717000005012,
    "selfTradePreventionMode": "EXPIRE_MAKER", "fills": [{"price": "67812.01000000", "qty": "0.01500000",
    "commission": "0.00001500", "commissionAsset": "BTC", "tradeId": 3600125601}],
}  # fmt: skip


def test_spot_full_answer() -> None:
    snapshot, fills = parse_spot_order(convert(SPOT_FULL, WireSpotOrder, "spot"), 7)
    assert snapshot.client_order_id == "kst-7f3a9c01" and snapshot.order_id == 41200987123
    assert snapshot.status is OrderStatus.FILLED and snapshot.order_type is OrderType.MARKET
    assert snapshot.quantity == D("0.015") and snapshot.filled_quantity == D("0.015")
    assert snapshot.cumulative_quote == D("1017.18015") and snapshot.price is None
    assert snapshot.average_price == D("67812.01") and snapshot.ts_updated == 1717000005012 * MS
    (fill,) = fills
    assert (fill.trade_id, fill.price, fill.quantity, fill.fee, fill.fee_asset) == (
        3600125601, D("67812.01"), D("0.015"), D("0.000015"), "BTC",
    )  # fmt: skip
    assert fill.liquidity is LiquiditySide.TAKER and fill.ts_init == 7 and fill.side is Side.BUY
    ack = {key: SPOT_FULL[key] for key in ("symbol", "orderId", "orderListId", "clientOrderId", "transactTime")}
    snapshot, fills = parse_spot_order(convert(ack, WireSpotOrder, "spot"), 7)
    assert snapshot.status is OrderStatus.NEW and fills == []
    cancel = {**SPOT_FULL, "status": "CANCELED", "clientOrderId": "cancel-9", "origClientOrderId": "kst-7f3a9c01"}
    assert parse_spot_order(convert(cancel, WireSpotOrder, "spot"), 7)[0].client_order_id == "kst-7f3a9c01"
    with pytest.raises(DataError, match="unexpected answer"):
        convert({"symbol": "BTCUSDT"}, WireSpotOrder, "spot order")


def test_spot_stop_order_trigger_state() -> None:
    base = {**SPOT_FULL, "type": "STOP_LOSS_LIMIT", "status": "NEW", "executedQty": "0", "fills": []}
    untriggered = convert({**base, "workingTime": -1}, WireSpotOrder, "spot")
    assert not parse_spot_order(untriggered, 0)[0].triggered
    assert parse_spot_order(convert({**base, "isWorking": True}, WireSpotOrder, "spot"), 0)[0].triggered


def test_oco_answer() -> None:
    body = {
        "orderListId": 1, "contingencyType": "OCO", "listStatusType": "EXEC_STARTED", "listOrderStatus": "EXECUTING",
        "listClientOrderId": "list-1", "transactionTime": 1717000005012, "symbol": "BTCUSDT",
        "orders": [{"symbol": "BTCUSDT", "orderId": 11, "clientOrderId": "sl"},
                   {"symbol": "BTCUSDT", "orderId": 12, "clientOrderId": "tp"}],
        "orderReports": [
            {**SPOT_FULL, "orderId": 11, "clientOrderId": "sl", "orderListId": 1, "type": "STOP_LOSS_LIMIT",
             "status": "NEW", "executedQty": "0", "cummulativeQuoteQty": "0", "stopPrice": "65000", "fills": []},
            {**SPOT_FULL, "orderId": 12, "clientOrderId": "tp", "orderListId": 1, "type": "LIMIT_MAKER",
             "status": "NEW", "executedQty": "0", "cummulativeQuoteQty": "0", "price": "70000", "fills": []},
        ],
    }  # fmt: skip
    order_list = convert(body, WireSpotOrderList, "oco")
    legs = [parse_spot_order(report, 0)[0] for report in order_list.order_reports]
    assert [(leg.client_order_id, leg.order_type, leg.order_list_id) for leg in legs] == [
        ("sl", OrderType.STOP_LIMIT, 1), ("tp", OrderType.LIMIT_MAKER, 1),
    ]  # fmt: skip
    assert legs[0].stop_price == D("65000") and legs[1].price == D("70000")


FUTURES_RESULT = {
    "orderId": 785310006412, "symbol": "BTCUSDT", "status": "NEW", "clientOrderId": "kst-f-000193",
    "price": "67700.00", "avgPrice": "0.00", "origQty": "0.010", "executedQty": "0.000", "cumQty": "0.000",
    "cumQuote": "0.00000", "timeInForce": "GTX", "type": "LIMIT", "reduceOnly": False, "closePosition": False,
    "side": "BUY", "positionSide": "BOTH", "stopPrice": "0.00", "workingType": "CONTRACT_PRICE",
    "priceProtect": False, "origType": "LIMIT", "priceMatch": "NONE", "selfTradePreventionMode": "EXPIRE_MAKER",
    "goodTillDate": 0, "updateTime": 1717000005120,
}  # fmt: skip


def test_futures_result_answer() -> None:
    snapshot = parse_futures_order(convert(FUTURES_RESULT, WireFuturesOrder, "futures"), 3)
    assert snapshot.market is Market.FUTURES and snapshot.status is OrderStatus.NEW
    assert snapshot.time_in_force is TimeInForce.GTX and snapshot.price == D("67700")
    assert snapshot.stop_price is None and snapshot.quantity == D("0.01") and snapshot.filled_quantity == 0
    assert snapshot.ts_updated == 1717000005120 * MS and snapshot.good_till_ns is None
    expired = {**FUTURES_RESULT, "status": "EXPIRED_IN_MATCH"}
    assert parse_futures_order(convert(expired, WireFuturesOrder, "f"), 0).status is OrderStatus.EXPIRED


ALGO = {
    "algoId": 2146760, "clientAlgoId": "6B2I9XVcJpCjqPAJ4YoFX7", "algoType": "CONDITIONAL",
    "orderType": "TAKE_PROFIT", "symbol": "BNBUSDT", "side": "SELL", "positionSide": "BOTH", "timeInForce": "GTC",
    "quantity": "0.01", "algoStatus": "NEW", "actualOrderId": "", "actualPrice": "0.00000",
    "triggerPrice": "750.000", "price": "750.000", "icebergQuantity": None, "selfTradePreventionMode": "EXPIRE_MAKER",
    "workingType": "CONTRACT_PRICE", "priceMatch": "NONE", "closePosition": False, "priceProtect": False,
    "reduceOnly": False, "createTime": 1750485492076, "updateTime": 1750514545091, "triggerTime": 0,
    "goodTillDate": 0,
}  # fmt: skip


def test_algo_answer() -> None:
    wire = convert(ALGO, WireAlgoOrder, "algo")
    snapshot = parse_algo_order(wire, 0)
    assert snapshot.client_order_id == "6B2I9XVcJpCjqPAJ4YoFX7" and snapshot.order_id == 2146760
    assert snapshot.order_type is OrderType.TAKE_PROFIT_LIMIT and snapshot.stop_price == D("750")
    assert snapshot.status is OrderStatus.NEW and not snapshot.triggered and wire.resulting_order_id is None
    triggered = convert({**ALGO, "algoStatus": "TRIGGERED", "actualOrderId": "8886774"}, WireAlgoOrder, "algo")
    assert parse_algo_order(triggered, 0).triggered and triggered.resulting_order_id == 8886774
    with pytest.raises(DataError, match="algo status"):
        parse_algo_order(convert({**ALGO, "algoStatus": "LOST"}, WireAlgoOrder, "algo"), 0)


def test_trades_balances_positions() -> None:
    spot_trade = {"symbol": "BTCUSDT", "id": 28457, "orderId": 100234, "orderListId": -1, "price": "4.00000100",
                  "qty": "12.00000000", "quoteQty": "48.000012", "commission": "10.10000000",
                  "commissionAsset": "BNB", "time": 1499865549590, "isBuyer": True, "isMaker": False,
                  "isBestMatch": True}  # fmt: skip
    fill = parse_trade(convert(spot_trade, WireSpotTrade, "t"), cid("a"), 5)
    assert (fill.side, fill.liquidity, fill.fee_asset, fill.ts_event) == (
        Side.BUY, LiquiditySide.TAKER, "BNB", 1499865549590 * MS,
    )  # fmt: skip
    futures_trade = {"buyer": False, "commission": "0.07819010", "commissionAsset": "USDT", "id": 698759,
                     "maker": False, "orderId": 25851813, "price": "7819.01", "qty": "0.002", "quoteQty": "15.63802",
                     "realizedPnl": "-0.91539999", "side": "SELL", "positionSide": "SHORT", "symbol": "BTCUSDT",
                     "time": 1569514978020}  # fmt: skip
    fill = parse_trade(convert(futures_trade, WireFuturesTrade, "t"), cid("b"), 5)
    assert fill.realized_pnl == D("-0.91539999") and fill.side is Side.SELL and fill.market is Market.FUTURES
    balance = parse_futures_balance(convert({
        "accountAlias": "SgsR", "asset": "USDT", "balance": "122607.35137903", "crossWalletBalance": "23.72469206",
        "crossUnPnl": "10.00000000", "availableBalance": "23.72469206", "maxWithdrawAmount": "23.72469206",
        "marginAvailable": True, "updateTime": 1617939110373}, WireFuturesBalance, "b"))  # fmt: skip
    assert balance == Balance(Market.FUTURES, "USDT", D("23.72469206"), D("122593.62668697"), D("122607.35137903"),
                              D("10"))  # fmt: skip
    row = {"symbol": "BTCUSDT", "positionSide": "BOTH", "positionAmt": "-0.010", "entryPrice": "67700.0",
           "breakEvenPrice": "67706.77", "markPrice": "67801.12", "unRealizedProfit": "-1.01120000",
           "liquidationPrice": "0", "isolatedMargin": "0", "notional": "-678.0112", "marginAsset": "USDT",
           "isolatedWallet": "0", "initialMargin": "33.90", "maintMargin": "2.71", "positionInitialMargin": "33.90056",
           "openOrderInitialMargin": "0", "adl": 2, "bidNotional": "0", "askNotional": "0",
           "updateTime": 1717000006212}  # fmt: skip
    position = parse_position_risk(convert(row, WirePositionRisk, "p"), 0)
    assert position.quantity == D("-0.01") and position.leverage == 20 and position.margin_type is MarginType.CROSSED
    assert position.liquidation_price is None and position.ts_updated == 1717000006212 * MS
    configured = parse_position_risk(convert(row, WirePositionRisk, "p"), 0, 5, MarginType.ISOLATED)
    assert configured.leverage == 5 and configured.margin_type is MarginType.ISOLATED
    v2 = parse_position_risk(convert({**row, "leverage": "10", "marginType": "isolated"}, WirePositionRisk, "p"), 0, 5)
    assert v2.leverage == 10 and v2.margin_type is MarginType.ISOLATED


# ---- user data stream → core -----------------------------------------------------------------------
EXECUTION_REPORT = (
    b'{"e":"executionReport","E":1717000005013,"s":"BTCUSDT","c":"kst-7f3a9c02","S":"SELL","o":"LIMIT","f":"GTC",'
    b'"q":"0.02000000","p":"67850.00000000","P":"0.00000000","F":"0.00000000","g":-1,"C":"","x":"TRADE",'
    b'"X":"PARTIALLY_FILLED","r":"NONE","i":41200987155,"l":"0.00800000","z":"0.00800000","L":"67850.00000000",'
    b'"n":"0.54280000","N":"USDT","T":1717000005012,"t":3600125640,"I":88120044512,"w":true,"m":true,"M":true,'
    b'"O":1716999990001,"Z":"542.80000000","Y":"542.80000000","Q":"0.00000000","W":1716999990001,'
    b'"V":"EXPIRE_MAKER"}'
)


def test_execution_report() -> None:
    event = decode_user_frame(EXECUTION_REPORT)
    assert isinstance(event, WireExecutionReport)
    update = spot_order_update(event, "acc", 99)
    order = update.order
    assert update.execution_type is ExecutionType.TRADE and update.ts_event == 1717000005012 * MS
    assert order.status is OrderStatus.PARTIALLY_FILLED and order.filled_quantity == D("0.008")
    assert order.cumulative_quote == D("542.8") and order.ts_created == 1716999990001 * MS
    fill = update.fill
    assert fill is not None and fill.trade_id == 3600125640 and fill.liquidity is LiquiditySide.MAKER
    assert (fill.price, fill.quantity, fill.fee, fill.fee_asset, fill.ts_init) == (
        D("67850"), D("0.008"), D("0.5428"), "USDT", 99,
    )  # fmt: skip
    cancel = EXECUTION_REPORT.replace(b'"c":"kst-7f3a9c02"', b'"c":"cxl-1"').replace(b'"C":""', b'"C":"kst-7f3a9c02"')
    cancel = cancel.replace(b'"x":"TRADE"', b'"x":"CANCELED"').replace(b'"X":"PARTIALLY_FILLED"', b'"X":"CANCELED"')
    event = decode_user_frame(cancel)
    assert isinstance(event, WireExecutionReport)
    update = spot_order_update(event, "acc", 99)
    assert update.order.client_order_id == "kst-7f3a9c02" and update.fill is None
    assert update.execution_type is ExecutionType.CANCELED
    expired = EXECUTION_REPORT.replace(b'"x":"TRADE"', b'"x":"EXPIRED"').replace(
        b'"X":"PARTIALLY_FILLED"', b'"X":"EXPIRED"'
    )
    expired = expired[:-1] + b',"eR":"UNFILLED_IOC_QUANTITY_EXPIRED"}'
    event = decode_user_frame(expired)
    assert isinstance(event, WireExecutionReport)
    assert spot_order_update(event, "acc", 0).order.expiry_reason == "IOC_REMAINDER"


ORDER_TRADE_UPDATE = (
    b'{"e":"ORDER_TRADE_UPDATE","E":1717000006210,"T":1717000006208,"o":{"s":"BTCUSDT","c":"kst-f-000193",'
    b'"S":"BUY","o":"LIMIT","f":"GTX","q":"0.010","p":"67700.00","ap":"67700.00","sp":"0","x":"TRADE",'
    b'"X":"FILLED","i":785310006412,"l":"0.010","z":"0.010","L":"67700.00","N":"USDT","n":"0.13540000",'
    b'"T":1717000006208,"t":5012311950,"b":"0","a":"0","m":true,"R":false,"wt":"CONTRACT_PRICE","ot":"LIMIT",'
    b'"ps":"BOTH","cp":false,"rp":"0","pP":false,"si":0,"ss":0,"V":"EXPIRE_MAKER","pm":"NONE","gtd":0,"er":"0"}}'
)
ACCOUNT_UPDATE = (
    b'{"e":"ACCOUNT_UPDATE","E":1717000006212,"T":1717000006208,"a":{"m":"ORDER",'
    b'"B":[{"a":"USDT","wb":"5012.44410000","cw":"5012.44410000","bc":"0"}],'
    b'"P":[{"s":"BTCUSDT","pa":"0.010","ep":"67700.0","bep":"67706.77","cr":"-31.12000000","up":"1.01124000",'
    b'"mt":"cross","iw":"0","ps":"BOTH","ma":"USDT"}]}}'
)


def test_order_trade_update_and_account_update() -> None:
    event = decode_user_frame(ORDER_TRADE_UPDATE)
    assert isinstance(event, WireOrderTradeUpdate)
    update = futures_order_update(event, "acc", 1)
    assert update.order.status is OrderStatus.FILLED and update.order.cumulative_quote == D("677")
    assert update.order.time_in_force is TimeInForce.GTX
    fill = update.fill
    assert fill is not None and fill.trade_id == 5012311950 and fill.fee == D("0.1354")
    assert fill.liquidity is LiquiditySide.MAKER and fill.realized_pnl == 0
    event = decode_user_frame(ACCOUNT_UPDATE)
    assert isinstance(event, WireAccountUpdate)
    known = {"USDT": Balance(Market.FUTURES, "USDT", D("5000"), D("30"), D("5013"), D("2"))}
    positions: dict[str, PositionSnapshot] = {}
    account = futures_account_update(event, "acc", 1, known, positions)
    assert account.reason is AccountUpdateReason.ORDER
    (balance,) = account.balances
    assert balance.wallet == D("5012.4441") and balance.free == D("4999.4441") and balance.unrealized_pnl == 2
    (position,) = account.positions
    assert position.quantity == D("0.01") and position.entry_price == D("67700")
    assert position.mark_price == D("67801.124") and position.realized_pnl == D("-31.12")
    assert position.margin_type is MarginType.CROSSED
    funding = ACCOUNT_UPDATE.replace(b'"m":"ORDER"', b'"m":"FUNDING_FEE"')
    event = decode_user_frame(funding)
    assert isinstance(event, WireAccountUpdate)
    assert futures_account_update(event, "acc", 1, {}, {}).reason is AccountUpdateReason.FUNDING_FEE


def test_algo_update_and_stream_control_events() -> None:
    frame = (
        b'{"e":"ALGO_UPDATE","T":1750515742297,"E":1750515742303,"o":{"caid":"Q5xaq5EGKgXXa0fD7fs0Ip","aid":2148719,'
        b'"at":"CONDITIONAL","o":"TAKE_PROFIT","s":"BNBUSDT","S":"SELL","ps":"BOTH","f":"GTC","q":"0.01",'
        b'"X":"CANCELED","ai":"","ap":"0.00000","aq":"0.00000","act":"0","tp":"750","p":"750","V":"EXPIRE_MAKER",'
        b'"wt":"CONTRACT_PRICE","pm":"NONE","cp":false,"pP":false,"R":false,"tt":0,"gtd":0,"rm":"Reduce Only reject"}}'
    )
    event = decode_user_frame(frame)
    assert isinstance(event, WireAlgoUpdate)
    result = algo_update(event, "acc", 0)
    assert result.update.execution_type is ExecutionType.CANCELED and result.resulting_order_id is None
    assert (
        result.update.reason == "Reduce Only reject" and result.update.order.order_type is OrderType.TAKE_PROFIT_LIMIT
    )
    triggered = frame.replace(b'"X":"CANCELED"', b'"X":"TRIGGERED"').replace(b'"ai":""', b'"ai":"99"')
    event = decode_user_frame(triggered)
    assert isinstance(event, WireAlgoUpdate)
    result = algo_update(event, "acc", 0)
    assert result.update.execution_type is ExecutionType.TRIGGERED and result.resulting_order_id == 99
    assert result.update.order.triggered
    expired = decode_user_frame(b'{"e":"listenKeyExpired","E":1717000000000,"listenKey":"abc"}')
    assert isinstance(expired, WireListenKeyExpired) and expired.listenKey == "abc"


def test_spot_ws_api_frames_and_account_position() -> None:
    wrapped = (
        b'{"subscriptionId":0,"event":{"e":"outboundAccountPosition","E":1717000005014,"u":1717000005012,'
        b'"B":[{"a":"BTC","f":"0.49200000","l":"0.01200000"},{"a":"USDT","f":"10542.80000000","l":"0.00000000"}]}}'
    )
    event = decode_user_frame(wrapped)
    assert isinstance(event, WireOutboundAccountPosition)
    update = spot_account_update(event, "acc", 0)
    assert update.balances[0] == Balance(Market.SPOT, "BTC", D("0.492"), D("0.012"), D("0.504"))
    reordered = b'{"event":' + EXECUTION_REPORT + b',"subscriptionId":0}'
    assert isinstance(decode_user_frame(reordered), WireExecutionReport)
    answer = decode_user_frame(b'{"id":1,"status":200,"result":{"subscriptionId":0}}')
    assert isinstance(answer, OtherFrame) and answer.event_type is None
    ignored = decode_user_frame(b'{"e":"MARGIN_CALL","E":1,"cw":"3","p":[]}')
    assert isinstance(ignored, OtherFrame) and ignored.event_type == "MARGIN_CALL"
    with pytest.raises(DataError):
        decode_user_frame(b"{not json")
