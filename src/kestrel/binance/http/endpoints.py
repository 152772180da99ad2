"""Every REST endpoint Kestrel calls: method, path, security type and weight (spec §5).

One table, so the weight budget, the signing decision and the simulator's routes read the same facts.
`orders` is what the call counts on the order-rate counters.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Security(StrEnum):
    NONE = "NONE"
    USER_STREAM = "USER_STREAM"  # API key header, unsigned
    USER_DATA = "USER_DATA"  # key + signature
    TRADE = "TRADE"  # key + signature


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    method: str
    path: str
    security: Security
    weight: int
    orders: int = 0
    is_write: bool = False

    @property
    def signed(self) -> bool:
        return self.security in (Security.USER_DATA, Security.TRADE)


def _e(name: str, method: str, path: str, security: Security, weight: int, orders: int = 0) -> Endpoint:
    return Endpoint(name, method, path, security, weight, orders, is_write=method in ("POST", "PUT", "DELETE"))


N, K, U, T = Security.NONE, Security.USER_STREAM, Security.USER_DATA, Security.TRADE

SPOT: dict[str, Endpoint] = {
    e.name: e
    for e in (
        _e("time", "GET", "/api/v3/time", N, 1),
        _e("exchange_info", "GET", "/api/v3/exchangeInfo", N, 20),
        _e("depth", "GET", "/api/v3/depth", N, 5),  # 5/25/50/250 by limit: see depth_weight
        _e("klines", "GET", "/api/v3/klines", N, 2),
        _e("agg_trades", "GET", "/api/v3/aggTrades", N, 4),
        _e("new_order", "POST", "/api/v3/order", T, 1, orders=1),
        _e("cancel_order", "DELETE", "/api/v3/order", T, 1),
        _e("query_order", "GET", "/api/v3/order", U, 4),
        _e("open_orders", "GET", "/api/v3/openOrders", U, 6),  # 80 without symbol: OPEN_ORDERS_ALL_WEIGHT
        _e("order_trades", "GET", "/api/v3/myTrades", U, 5),  # with orderId (20 without)
        _e("amend_order", "PUT", "/api/v3/order/amend/keepPriority", T, 4),
        _e("new_oco", "POST", "/api/v3/orderList/oco", T, 1, orders=2),
        _e("cancel_order_list", "DELETE", "/api/v3/orderList", T, 1),
        _e("account", "GET", "/api/v3/account", U, 20),
        # wallet (SAPI): weighed per UID (900 / 1 of 180,000 a minute), not on the IP budget
        _e("asset_transfer", "POST", "/sapi/v1/asset/transfer", U, 0),
        _e("asset_transfer_history", "GET", "/sapi/v1/asset/transfer", U, 0),
        _e("listen_key_create", "POST", "/api/v3/userDataStream", K, 2),
        _e("listen_key_keepalive", "PUT", "/api/v3/userDataStream", K, 2),
        _e("listen_key_close", "DELETE", "/api/v3/userDataStream", K, 2),
    )
}

FUTURES: dict[str, Endpoint] = {
    e.name: e
    for e in (
        _e("time", "GET", "/fapi/v1/time", N, 1),
        _e("exchange_info", "GET", "/fapi/v1/exchangeInfo", N, 1),
        _e("depth", "GET", "/fapi/v1/depth", N, 10),  # 2/5/10/20 by limit: see depth_weight
        _e("klines", "GET", "/fapi/v1/klines", N, 5),
        _e("agg_trades", "GET", "/fapi/v1/aggTrades", N, 20),
        _e("premium_index", "GET", "/fapi/v1/premiumIndex", N, 1),
        _e("funding_rate", "GET", "/fapi/v1/fundingRate", N, 1),
        _e("open_interest", "GET", "/fapi/v1/openInterest", N, 1),
        _e("leverage_brackets", "GET", "/fapi/v1/leverageBracket", U, 1),
        _e("new_order", "POST", "/fapi/v1/order", T, 0, orders=1),
        _e("cancel_order", "DELETE", "/fapi/v1/order", T, 1),
        _e("query_order", "GET", "/fapi/v1/order", U, 1),
        _e("open_orders", "GET", "/fapi/v1/openOrders", U, 1),  # 40 without symbol
        _e("modify_order", "PUT", "/fapi/v1/order", T, 0, orders=1),
        _e("order_trades", "GET", "/fapi/v1/userTrades", U, 5),
        _e("cancel_all", "DELETE", "/fapi/v1/allOpenOrders", T, 1),
        _e("new_algo_order", "POST", "/fapi/v1/algoOrder", T, 0, orders=1),
        _e("cancel_algo_order", "DELETE", "/fapi/v1/algoOrder", T, 1),
        _e("query_algo_order", "GET", "/fapi/v1/algoOrder", U, 1),
        _e("open_algo_orders", "GET", "/fapi/v1/openAlgoOrders", U, 1),  # 40 without symbol
        _e("balance", "GET", "/fapi/v3/balance", U, 5),
        _e("account", "GET", "/fapi/v3/account", U, 5),
        _e("position_risk", "GET", "/fapi/v3/positionRisk", U, 5),
        _e("leverage", "POST", "/fapi/v1/leverage", T, 1),
        _e("margin_type", "POST", "/fapi/v1/marginType", T, 1),
        _e("listen_key_create", "POST", "/fapi/v1/listenKey", K, 1),
        _e("listen_key_keepalive", "PUT", "/fapi/v1/listenKey", K, 1),
        _e("listen_key_close", "DELETE", "/fapi/v1/listenKey", K, 1),
    )
}


OPEN_ORDERS_ALL_WEIGHT = {"spot": 80, "futures": 40}  # openOrders / openAlgoOrders without `symbol`


def depth_weight(futures: bool, limit: int) -> int:
    """Depth snapshot weight by `limit` (spec §5.3)."""
    if futures:
        return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
