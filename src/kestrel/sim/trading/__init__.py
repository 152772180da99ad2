"""The simulator's trading half: Binance's signed REST trading API and user data streams, served by
the same `MarketSimulator` (same REST port, same WS sites, same clock, same fault plan) on THE
matching engine (`kestrel.matching`), fed from the simulator's own market.

Python API::

    from kestrel.sim import MarketSimulator, SimulatorOptions
    from kestrel.sim.trading.options import SimAccount, TradingOptions

    options = SimulatorOptions(trading=TradingOptions(accounts=[SimAccount(api_key=..., api_secret=...)]))
    async with MarketSimulator(options) as sim:
        sim.trading.credentials_list()   # [{"name", "api_key", "api_secret"}]
        sim.trading.engine               # the MatchingEngine (SimVenue's class) behind the API
        sim.trading.fail_next_orders(1, placed=True)   # the next order is placed, then answered 503
        sim.trading.timeout_next_orders(1, stall_s=2)  # ... placed, then left unanswered
        sim.trading.silence_user_streams(5.0); sim.trading.expire_listen_keys()
        sim.stats()["trading"]           # counters (orders, fills, user events, injected faults)

Modules: `options` (accounts, limits), `auth` (keys, signatures, recvWindow), `http` (the common
request path), `spot_routes`, `futures_routes`, `futures_account`, `user_streams` and `user_ws`
(listenKeys, user-data WebSockets, spot WS API), `wire_spot` / `wire_futures` (JSON formats),
`bridge` (market → engine), `desk` (the engine, accounts and event dispatch).
"""
