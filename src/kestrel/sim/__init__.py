"""The local Binance simulator, market-data half (`kestrel sim serve`).

It speaks the real protocol (spec/binance-protocol.md §1-§5, §7): spot `/api/v3/...` and USD-M
`/fapi/v1/...` REST, raw and combined WebSocket streams, the USD-M `/public` and `/market` routes,
control messages, limits, pings and the 24 h cut, with a seeded synthetic market (or a replay of
recorded data) behind it and fault injection in front of it. It builds every wire message itself,
independently of our client (kestrel.binance), so a misunderstanding of the protocol shows up as a
failing test instead of two matching bugs.

Python API (tests)::

    from kestrel.core.enums import Market
    from kestrel.sim import FaultPlan, MarketSimulator, SimulatorOptions

    options = SimulatorOptions(markets=(Market.FUTURES,), symbols=300, seed=7,
                               faults=FaultPlan(gap_rate=0.001))
    async with MarketSimulator(options) as sim:
        sim.rest_url          # "http://127.0.0.1:PORT": spot /api/v3 and USD-M /fapi/v1
        sim.ws_url            # spot /ws, /stream; USD-M /public/..., /market/... (config/dev.yaml layout)
        sim.futures_ws_url    # USD-M only; a route-less path gets only /public streams
        sim.spot, sim.futures # MarketEndpoints(rest_url, ws_url) per market
        sim.symbols(Market.FUTURES)
        sim.book(Market.FUTURES, "BTCUSDT")          # BookView(last_update_id, bids, asks), Decimals,
                                                     # bids best first, asks best first
        sim.book_at(Market.FUTURES, "BTCUSDT", uid)  # the book right after update id `uid` (recent ids)
        sim.stats()           # {"total", "per_symbol" ("futures:BTCUSDT"), "per_stream", "connections",
                              #  "rest", "pump"}: see kestrel.sim.stats for the counting rules
        sim.inject_gap(Market.FUTURES, "BTCUSDT")    # withhold the next subscribed diff-depth message
        sim.disconnect_all(); sim.stall_all(2.0); sim.send_shutdown_notice()
        sim.set_faults(FaultPlan(drop_rate=0.01)); sim.set_clock_skew_ms(250)
        await sim.wait_for_subscribers(Market.FUTURES, streams=900)
        sim.server_time_ms()

    # replay of raw recordings (kestrel.replay.raw formats), byte-identical payloads:
    SimulatorOptions(source="replay", replay_files=[path], speed=0,  # 0 = as fast as clients read
                     replay_start="all_depth_subscribed", replay_full_depth_snapshots=True)
    sim.replay_finished(); await sim.wait_replay_finished()

Protocol choices a client must know (all marked in the code where they are made):
- Control-message errors are sent as ``{"error": {"code": N, "msg": "..."}, "id": ...}``, the shape
  live servers send; spec §1.2's table prints the inner object. A SUBSCRIBE that would pass the
  1024-stream cap is refused whole (code 4 "Too many subscriptions"); a URL naming too many streams
  is refused at the handshake (HTTP 400); more than 300 new connections per 5 minutes: HTTP 429.
- Too many incoming messages per second (5 spot, 10 USD-M; pings and pongs count) close the
  connection with code 1008. Server pings carry the server time in ms as payload; spot needs the
  payload echoed, USD-M market streams accept any pong.
- Symbols in stream names must be lower case (spec §1.1): SUBSCRIBE refuses an upper-case one with
  code 2; an unknown lower-case symbol is accepted and never delivers, as on Binance.
  Spot `timeUnit=MICROSECOND` is not supported.
- USD-M update ids advance by one or more per book change (so `U` ≠ previous `u` + 1); link diffs by
  `pu`. bookTicker `u` is the same counter. Spot ids advance by exactly one per change.
- Diff depth exists at every speed of the market (spot `@depth` = 1000 ms, `@depth@100ms`; USD-M
  `@depth` = 250 ms, `@500ms`, `@100ms`, and the real-time `@0ms` seen in the recordings).

Counting rules of `stats()` are in `kestrel.sim.stats`; what each fault does in `kestrel.sim.faults`;
the synthetic market's model in `kestrel.sim.synthetic` and `kestrel.sim.synthetic_symbol`; replay
in `kestrel.sim.replay`. Route groups are registered from their modules (`register_market_routes`,
`add_stream_routes`, `rest.add_route` for weights), so the trading half can add `sim/trading/...`.
The trading half (signed REST, user data streams, on the matching engine) is `kestrel.sim.trading`:
`sim.trading`.
"""

from kestrel.sim.book import BookView
from kestrel.sim.faults import FaultPlan, load_fault_plan
from kestrel.sim.options import ProtocolLimits, RateModel, SimulatorOptions
from kestrel.sim.server import MarketEndpoints, MarketSimulator

__all__ = [
    "BookView",
    "FaultPlan",
    "MarketEndpoints",
    "MarketSimulator",
    "ProtocolLimits",
    "RateModel",
    "SimulatorOptions",
    "load_fault_plan",
]
