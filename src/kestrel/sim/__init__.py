"""The local Binance simulator, market-data half (`kestrel sim serve`).

It speaks the real protocol (spec/binance-protocol.md §1-§5, §7): spot `/api/v3/...` and USD-M
`/fapi/v1/...` REST, raw and combined WebSocket streams, the USD-M `/public` and `/market` routes,
control messages, limits, pings and the 24 h cut, with a seeded synthetic market (or a replay of
recorded data) behind it and fault injection in front of it.

Python API (tests)::

    from kestrel.core.enums import Market
    from kestrel.sim import FaultPlan, MarketSimulator, SimulatorOptions

    options = SimulatorOptions(markets=(Market.FUTURES,), symbols=300, seed=7,
                               faults=FaultPlan(gap_rate=0.001))
    async with MarketSimulator(options) as sim:
        sim.rest_url          # "http://127.0.0.1:PORT": spot /api/v3 and USD-M /fapi/v1
        sim.ws_url            # spot /ws, /stream; USD-M /public/..., /market/...
        sim.futures_ws_url    # USD-M only; a route-less path gets only /public streams
        sim.spot, sim.futures # MarketEndpoints(rest_url, ws_url) per market
        sim.symbols(Market.FUTURES)
        sim.book(Market.FUTURES, "BTCUSDT")          # BookView(last_update_id, bids, asks), Decimals
        sim.book_at(Market.FUTURES, "BTCUSDT", uid)  # the book right after update id `uid`
        sim.stats()           # {"total": {...}, "per_symbol": {"futures:BTCUSDT": {...}}, ...}
        sim.inject_gap(Market.FUTURES, "BTCUSDT")    # withhold the next subscribed diff-depth message
        sim.disconnect_all(); sim.stall_all(2.0); sim.send_shutdown_notice()
        sim.set_faults(FaultPlan(drop_rate=0.01)); sim.set_clock_skew_ms(250)
        await sim.wait_for_subscribers(Market.FUTURES, streams=900)

Counting rules of `stats()` are in `kestrel.sim.stats`; what each fault does is in
`kestrel.sim.faults`; the synthetic market's model in `kestrel.sim.synthetic`. The trading half
(signed REST, user data streams, on the matching engine) is `kestrel.sim.trading`: `sim.trading`.
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
