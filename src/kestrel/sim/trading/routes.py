"""Mount the trading half on the simulator's three sites."""

from __future__ import annotations

from aiohttp import web

from kestrel.core.enums import Market
from kestrel.sim.trading.desk import TradingDesk
from kestrel.sim.trading.endpoints import WeightTable
from kestrel.sim.trading.futures_routes import register_futures_routes
from kestrel.sim.trading.spot_routes import register_spot_routes
from kestrel.sim.trading.user_ws import add_user_stream_routes
from kestrel.sim.trading.wallet_routes import register_wallet_routes


def install_trading(
    desk: TradingDesk, rest_app: web.Application, shared_ws: web.Application, futures_ws: web.Application
) -> None:
    """REST routes on the REST site; user-data routes on both WS sites (call before the market
    stream routes, so `/ws/<listenKey>` is matched before `/ws/<streams>`); the spot WS API on the
    shared site."""
    weights = WeightTable()
    register_spot_routes(rest_app, desk, weights)
    register_futures_routes(rest_app, desk, weights)
    register_wallet_routes(rest_app, desk, weights)
    add_user_stream_routes(shared_ws, desk, Market.SPOT, ws_api=True)
    add_user_stream_routes(futures_ws, desk, Market.FUTURES, ws_api=False)
