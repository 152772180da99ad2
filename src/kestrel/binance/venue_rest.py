"""The live venue's REST calls of one market, answered in core types (spec §5.6–§5.10).

Thin: each method is one or two calls on the shared `BinanceHttpClient` (signing, budgets, 429/418,
the write circuit breaker and `UnknownOutcome` live there) and the `schemas.trading_rest` parsers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kestrel.binance.http.client import BinanceApiError, BinanceHttpClient
from kestrel.binance.http.endpoints import FUTURES, OPEN_ORDERS_ALL_WEIGHT, SPOT
from kestrel.binance.schemas import trading as wire_requests
from kestrel.binance.schemas.trading import WireRequest
from kestrel.binance.schemas.trading_rest import (
    WireAlgoOrder,
    WireFuturesBalance,
    WireFuturesOrder,
    WireFuturesTrade,
    WirePositionRisk,
    WireSpotAccount,
    WireSpotOrder,
    WireSpotOrderList,
    WireSpotTrade,
    convert,
    parse_algo_order,
    parse_futures_balance,
    parse_futures_order,
    parse_position_risk,
    parse_spot_balances,
    parse_spot_order,
    parse_trade,
)
from kestrel.core.clock import Clock
from kestrel.core.enums import MarginType, Market
from kestrel.core.errors import DataError, InvalidOrderError, KestrelError
from kestrel.core.identifiers import ClientOrderId
from kestrel.core.orders import Fill
from kestrel.core.venue import Balance, OrderSnapshot, PositionSnapshot

NOT_FOUND_CODES = frozenset({-2013, -2011})  # "Order does not exist." / "Unknown order sent."
MARGIN_TYPE_UNCHANGED = -4046


class OrderNotFound(KestrelError):
    """The exchange does not know the order (-2013)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def error_code(error: Exception) -> int | None:
    code = getattr(error, "code", None)
    return code if isinstance(code, int) else None


@dataclass(frozen=True, slots=True)
class OrderAnswer:
    """An order as REST reports it: the order (for an algo order, the algo order), the fills the
    answer lists, and for a triggered algo order the matching-engine order it created."""

    snapshot: OrderSnapshot
    fills: tuple[Fill, ...] = ()
    algo: bool = False
    resulting: OrderSnapshot | None = None


class MarketRest:
    """Order, trade, account and position calls of one market."""

    def __init__(self, market: Market, http: BinanceHttpClient, clock: Clock) -> None:
        self.market = market
        self.http = http
        self.clock = clock
        self.endpoints = FUTURES if market is Market.FUTURES else SPOT

    async def call(self, request: WireRequest, weight: int | None = None) -> Any:
        return await self.http.call(self.endpoints[request.endpoint], request.params, weight)

    async def sync_time(self) -> int:
        return await self.http.sync_time(self.endpoints["time"])

    # ---- answers --------------------------------------------------------------------------------
    def parse_answer(self, endpoint: str, body: Any) -> list[OrderAnswer]:
        """The order(s) in the answer to a new / cancel / modify / query call."""
        ts_init = self.clock.timestamp_ns()
        if self.market is Market.SPOT:
            if isinstance(body, dict) and "orderReports" in body:  # OCO placed, or a leg's list cancelled
                order_list = convert(body, WireSpotOrderList, "spot order list")
                return [OrderAnswer(*_spot(report, ts_init)) for report in order_list.order_reports]
            if isinstance(body, dict) and "amendedOrder" in body:
                body = body["amendedOrder"]
            return [OrderAnswer(*_spot(convert(body, WireSpotOrder, "spot order"), ts_init))]
        if endpoint in ("new_algo_order", "cancel_algo_order", "query_algo_order"):
            if isinstance(body, dict) and "algoStatus" not in body:
                return []  # a cancel answers {"algoId", "clientAlgoId", "code": "200", "msg": "success"}
            algo = convert(body, WireAlgoOrder, "algo order")
            return [OrderAnswer(parse_algo_order(algo, ts_init), algo=True)]
        return [OrderAnswer(parse_futures_order(convert(body, WireFuturesOrder, "futures order"), ts_init))]

    # ---- queries --------------------------------------------------------------------------------
    async def query_order(self, symbol: str, client_order_id: str, algo: bool) -> OrderAnswer:
        """One order by client id; raises `OrderNotFound` when the exchange does not know it."""
        request = wire_requests.query_order(self.market, symbol, client_order_id, algo)
        try:
            body = await self.call(request)
        except (BinanceApiError, InvalidOrderError) as error:
            code = error_code(error)
            if code in NOT_FOUND_CODES:
                raise OrderNotFound(str(error), code or 0) from None
            raise
        if algo and isinstance(body, dict) and not body.get("clientAlgoId"):
            raise OrderNotFound(f"algo order {client_order_id} not found", -2013)
        answer = self.parse_answer(request.endpoint, body)[0]
        if algo:
            resulting_id = convert(body, WireAlgoOrder, "algo order").resulting_order_id
            if resulting_id is not None:
                answer = OrderAnswer(answer.snapshot, (), True, await self._futures_order_by_id(symbol, resulting_id))
        return answer

    async def _futures_order_by_id(self, symbol: str, order_id: int) -> OrderSnapshot | None:
        try:
            body = await self.call(WireRequest("query_order", {"symbol": symbol, "orderId": order_id}))
        except (BinanceApiError, InvalidOrderError) as error:
            if error_code(error) in NOT_FOUND_CODES:
                return None
            raise
        return parse_futures_order(convert(body, WireFuturesOrder, "futures order"), self.clock.timestamp_ns())

    async def open_orders(self, symbol: str | None = None) -> list[OrderAnswer]:
        """Open orders (and, on futures, open algo orders) of one symbol or of all symbols."""
        params: dict[str, object] = {"symbol": symbol} if symbol else {}
        weight = None if symbol else OPEN_ORDERS_ALL_WEIGHT[self.market.value]
        body = await self.call(WireRequest("open_orders", params), weight)
        if not isinstance(body, list):
            raise DataError(f"{self.market.value} openOrders: unexpected answer {str(body)[:120]!r}")
        answers = [a for row in body for a in self.parse_answer("query_order", row)]
        if self.market is Market.FUTURES:
            algo_body = await self.call(WireRequest("open_algo_orders", params), weight)
            rows = algo_body.get("orders", []) if isinstance(algo_body, dict) else algo_body
            if not isinstance(rows, list):
                raise DataError(f"openAlgoOrders: unexpected answer {str(algo_body)[:120]!r}")
            ts_init = self.clock.timestamp_ns()
            for row in rows:
                wire = convert(row, WireAlgoOrder, "algo order")
                resulting = None
                if wire.resulting_order_id is not None:
                    resulting = await self._futures_order_by_id(wire.symbol, wire.resulting_order_id)
                answers.append(OrderAnswer(parse_algo_order(wire, ts_init), (), True, resulting))
        return answers

    async def order_fills(self, symbol: str, order_id: int, client_order_id: ClientOrderId) -> list[Fill]:
        """The order's trades in trade-id order (`myTrades` / `userTrades`)."""
        body = await self.call(wire_requests.order_trades(self.market, symbol, order_id))
        if not isinstance(body, list):
            raise DataError(f"{self.market.value} trades: unexpected answer {str(body)[:120]!r}")
        kind: type[WireSpotTrade] | type[WireFuturesTrade] = (
            WireSpotTrade if self.market is Market.SPOT else WireFuturesTrade
        )
        ts_init = self.clock.timestamp_ns()
        fills = [parse_trade(convert(row, kind, "trade"), client_order_id, ts_init) for row in body]
        return sorted((f for f in fills if f.venue_order_id == order_id), key=lambda f: f.trade_id)

    async def balances(self) -> list[Balance]:
        if self.market is Market.SPOT:
            body = await self.call(WireRequest("account", {"omitZeroBalances": "true"}))
            return parse_spot_balances(convert(body, WireSpotAccount, "spot account"))
        body = await self.call(WireRequest("balance", {}))
        if not isinstance(body, list):
            raise DataError(f"futures balance: unexpected answer {str(body)[:120]!r}")
        return [parse_futures_balance(convert(row, WireFuturesBalance, "futures balance")) for row in body]

    async def positions(self, leverage: dict[str, int], margin_types: dict[str, MarginType]) -> list[PositionSnapshot]:
        body = await self.call(WireRequest("position_risk", {}))
        if not isinstance(body, list):
            raise DataError(f"positionRisk: unexpected answer {str(body)[:120]!r}")
        ts_init = self.clock.timestamp_ns()
        positions = []
        for row in body:
            wire = convert(row, WirePositionRisk, "positionRisk")
            if wire.position_side not in ("BOTH", ""):
                continue  # hedge-mode legs: Kestrel trades one-way mode only
            positions.append(
                parse_position_risk(wire, ts_init, leverage.get(wire.symbol), margin_types.get(wire.symbol))
            )
        return positions

    # ---- futures account setup ------------------------------------------------------------------
    async def set_leverage(self, symbol: str, leverage: int) -> int:
        body = await self.call(WireRequest("leverage", {"symbol": symbol, "leverage": leverage}))
        return int(body.get("leverage", leverage)) if isinstance(body, dict) else leverage

    async def set_margin_type(self, symbol: str, margin_type: MarginType) -> None:
        try:
            await self.call(WireRequest("margin_type", {"symbol": symbol, "marginType": margin_type.value}))
        except BinanceApiError as error:
            if error.code != MARGIN_TYPE_UNCHANGED:
                raise


def _spot(wire: WireSpotOrder, ts_init: int) -> tuple[OrderSnapshot, tuple[Fill, ...]]:
    snapshot, fills = parse_spot_order(wire, ts_init)
    return snapshot, tuple(fills)
