"""The trading routes' weights and security types, from the client's endpoint table.

`kestrel.binance.http.endpoints` is the one table of paths, security types and weights; the client
budgets with it and the simulator charges with it, so the two cannot drift. The few trading paths our
client does not call (yet) are listed here in the same form (spec §5); they belong in that table once
the client uses them. Weights that depend on the request (open orders without a symbol) are rules.
"""

from __future__ import annotations

from aiohttp import web

from kestrel.binance.http.endpoints import FUTURES, SPOT, Endpoint, Security
from kestrel.core.enums import Market

N, K, U, T = Security.NONE, Security.USER_STREAM, Security.USER_DATA, Security.TRADE


def _e(name: str, method: str, path: str, security: Security, weight: int, orders: int = 0) -> Endpoint:
    return Endpoint(name, method, path, security, weight, orders, is_write=method in ("POST", "PUT", "DELETE"))


EXTRA_SPOT = (
    _e("test_order", "POST", "/api/v3/order/test", T, 1),
    _e("all_orders", "GET", "/api/v3/allOrders", U, 20),
    _e("cancel_open_orders", "DELETE", "/api/v3/openOrders", T, 1),
    _e("query_order_list", "GET", "/api/v3/orderList", U, 4),
    _e("open_order_lists", "GET", "/api/v3/openOrderList", U, 6),
    _e("my_trades", "GET", "/api/v3/myTrades", U, 5),  # 20 without orderId
    _e("amend_order", "PUT", "/api/v3/order/amend/keepPriority", T, 4),
)
EXTRA_FUTURES = (
    _e("all_orders", "GET", "/fapi/v1/allOrders", U, 5),
    _e("open_order", "GET", "/fapi/v1/openOrder", U, 1),
    _e("cancel_all_algo", "DELETE", "/fapi/v1/algoOpenOrders", T, 1),
    _e("all_algo_orders", "GET", "/fapi/v1/allAlgoOrders", U, 5),
    _e("balance_v2", "GET", "/fapi/v2/balance", U, 5),
    _e("account_v2", "GET", "/fapi/v2/account", U, 5),
    _e("position_risk_v2", "GET", "/fapi/v2/positionRisk", U, 5),
    _e("position_mode", "GET", "/fapi/v1/positionSide/dual", U, 30),
    _e("set_position_mode", "POST", "/fapi/v1/positionSide/dual", T, 1),
    _e("user_trades", "GET", "/fapi/v1/userTrades", U, 5),
    _e("modify_order", "PUT", "/fapi/v1/order", T, 0, orders=1),
)

# Market-data paths are served (and weighed) by the market-data half.
_MARKET_DATA = {
    "time",
    "exchange_info",
    "depth",
    "klines",
    "agg_trades",
    "premium_index",
    "funding_rate",
    "open_interest",
}


def trading_endpoints(market: Market) -> list[Endpoint]:
    """Every trading endpoint of a market (the client's table first, then the extras)."""
    table, extra = (SPOT, EXTRA_SPOT) if market is Market.SPOT else (FUTURES, EXTRA_FUTURES)
    listed = [endpoint for name, endpoint in table.items() if name not in _MARKET_DATA]
    known = {(endpoint.method, endpoint.path) for endpoint in listed}
    listed.extend(endpoint for endpoint in extra if (endpoint.method, endpoint.path) not in known)
    return listed


class WeightTable:
    """Request weight by (method, path); the market-data middleware asks it through a rule."""

    def __init__(self) -> None:
        self._by_route: dict[tuple[str, str], Endpoint] = {}
        for market in Market:
            for endpoint in trading_endpoints(market):
                self._by_route[(endpoint.method, endpoint.path)] = endpoint

    def endpoint(self, method: str, path: str) -> Endpoint | None:
        return self._by_route.get((method, path))

    def weight(self, request: web.Request) -> int:
        endpoint = self._by_route.get((request.method, request.path))
        if endpoint is None:
            return 1
        has_symbol = bool(request.query.get("symbol"))
        if endpoint.path == "/api/v3/openOrders" and request.method == "GET" and not has_symbol:
            return 80
        if endpoint.path == "/fapi/v1/openOrders" and not has_symbol:
            return 40
        if endpoint.path == "/api/v3/myTrades" and not request.query.get("orderId"):
            return 20
        return endpoint.weight
