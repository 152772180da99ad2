"""`MarketSimulator`: the server (REST + WS sites on loopback) around a market source.

Three listening sockets:
- REST (`rest_url`): spot `/api/v3/...` and USD-M `/fapi/v1/...` on one port (their paths differ);
- WS (`ws_url`): spot streams at `/ws`, `/stream`, USD-M streams under `/public` and `/market`, so a
  configuration with one stream base for both markets (config/dev.yaml) works;
- USD-M WS (`futures_ws_url`): USD-M only, where a connection without a route behaves as Binance's
  (it receives only /public streams).
With `port=P` they are P, P+1, P+2; `port=0` picks free ports.

The pump task advances the source along the timeline (the wall clock only paces it) and flushes
delayed messages; the housekeeping task pings and cuts connections; the fault scheduler runs the
periodic connection faults of the plan.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiohttp import web

from kestrel.config.paths import shared_data_dir
from kestrel.core.enums import Market
from kestrel.core.errors import ConfigurationError, KestrelError
from kestrel.core.logs import get_logger
from kestrel.replay.raw import RawFrame
from kestrel.sim.book import BookView
from kestrel.sim.faults import FaultInjector, FaultPlan, periodic_faults_due
from kestrel.sim.hub import StreamHub
from kestrel.sim.instruments import ExchangeInfoCatalog, select_specs
from kestrel.sim.lockstep import CONTROL_PATH, LockstepPlan, LockstepSession
from kestrel.sim.options import SimulatorOptions
from kestrel.sim.rest import binance_middleware, register_market_routes
from kestrel.sim.state import MarketSource, SimulatorState, WeightWindow
from kestrel.sim.stats import SimulatorStats
from kestrel.sim.synthetic import SyntheticMarket
from kestrel.sim.timeline import NANOS_PER_MILLI, Timeline
from kestrel.sim.trading.desk import TradingDesk
from kestrel.sim.trading.routes import install_trading
from kestrel.sim.ws import WsSite, add_stream_routes, housekeeping

log = get_logger(__name__)

_IDLE_SLEEP_S = 0.05
_MIN_SLEEP_S = 0.001
_FAST_BACKLOG_FRAMES = 5_000  # speed 0: pause while a client has this many frames queued
_EVENTS_PER_TURN = 2_000  # market events per pump turn before yielding to the loop


@dataclass(frozen=True, slots=True)
class MarketEndpoints:
    rest_url: str
    ws_url: str


class MarketSimulator:
    """The local Binance market-data simulator. Use as ``async with MarketSimulator(options) as sim:``."""

    def __init__(
        self,
        options: SimulatorOptions | None = None,
        replay_frames: Iterable[RawFrame] | None = None,
        lockstep: LockstepPlan | None = None,
    ) -> None:
        """`replay_frames` (with source="replay"): frames to replay besides `options.replay_files`, e.g. our
        own recordings through `kestrel.sim.event_frames.frames_from_events`. `lockstep`: the
        deterministic test mode of `kestrel.sim.lockstep` (a replay with the trading API; never for
        real trading): the plan's frames are published step by step, paced by the one client."""
        self.options = options or SimulatorOptions()
        if lockstep is not None and (self.options.source != "replay" or not self.options.trading.enabled):
            raise ConfigurationError("lockstep needs a replay source and the trading API")
        self._replay_frames = replay_frames
        self.stats_data = SimulatorStats()
        self.timeline = Timeline(speed=0.0 if lockstep is not None else self.options.speed)
        self._injector = FaultInjector(self.options.faults, self.options.seed)
        self.hub = StreamHub(self.stats_data, self._injector, self.timeline)
        self.source: MarketSource = self._build_source()
        self.hub.canonical = self.source.canonical
        self.state = SimulatorState(
            options=self.options,
            timeline=self.timeline,
            stats=self.stats_data,
            faults=self._injector,
            hub=self.hub,
            source=self.source,
            weights={
                Market.SPOT: WeightWindow(self.options.scaled(60.0), self.options.limits.weight_per_minute_spot),
                Market.FUTURES: WeightWindow(self.options.scaled(60.0), self.options.limits.weight_per_minute_futures),
            },
        )
        self.trading = TradingDesk(self.state, self.options.trading) if self.options.trading.enabled else None
        self.lockstep: LockstepSession | None = None
        if lockstep is not None:
            self.lockstep = self._build_lockstep(lockstep)
        self._runners: list[web.AppRunner] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.rest_url = self.ws_url = self.futures_ws_url = ""

    def _build_source(self) -> MarketSource:
        options = self.options
        if options.source == "replay":
            from kestrel.sim.replay import ReplayMarket

            if not options.replay_files and self._replay_frames is None:
                raise ConfigurationError("replay needs at least one recording file (or frames)")
            return ReplayMarket(
                options,
                self.hub.publish,
                self.hub.subscribed_streams,
                self.timeline,
                self._data_dir(required=False),
                self._replay_frames,
            )
        data_dir = self._data_dir(required=True)
        assert data_dir is not None
        catalogs = {market: ExchangeInfoCatalog.load(market, data_dir / "exchange_info") for market in options.markets}
        specs = {market: select_specs(catalogs[market], options.symbols) for market in options.markets}
        return SyntheticMarket(
            specs,
            catalogs,
            options.seed,
            options.rates,
            self.hub.publish,
            self.hub.subscribed_streams,
            options.book_history_updates,
        )

    def _build_lockstep(self, plan: LockstepPlan) -> LockstepSession:
        from kestrel.sim.replay import ReplayMarket

        desk, source = self.trading, self.source
        assert desk is not None
        assert isinstance(source, ReplayMarket)
        session = LockstepSession(
            plan,
            publish_frame=source.publish_now,
            dispatch=desk.dispatch,  # type: ignore[arg-type]
            user_frames_sent=lambda: desk.counters.user_events_sent,
            set_time=self.timeline.set_position,
            client_ready=source.depth_subscribed,
        )
        desk.use_lockstep(session)
        self.state.depth_gate = session.depth_gate
        return session

    def _data_dir(self, required: bool) -> Any:
        directory = self.options.data_dir or shared_data_dir()
        if directory is None and required:
            raise ConfigurationError(
                "the shared Binance data folder (exchangeInfo files) was not found; pass data_dir / --data-dir"
            )
        return directory

    # ---- life cycle ---------------------------------------------------------------------------
    async def __aenter__(self) -> MarketSimulator:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        options = self.options
        origin_ns = options.start_time_ms * NANOS_PER_MILLI if options.start_time_ms is not None else None
        if self.lockstep is not None:  # lockstep time is the backtest's: exchange time, no offset
            self.timeline.start(self.lockstep.plan.start_ns)
        else:
            self.timeline.start(self.source.origin_ns() or origin_ns)
            self.timeline.offset_ns = self.source.exchange_offset_ns()
        self.set_clock_skew_ms(options.faults.clock_skew_ms)
        self.source.start(self.timeline.now_ns())
        for market in options.markets:
            for spec in self.source.specs(market):
                self.stats_data.symbol(spec.key)  # every symbol appears in the stats, traffic or not
        rest_app = web.Application(middlewares=[binance_middleware])
        register_market_routes(rest_app, self.state)
        shared_ws = web.Application()
        futures_ws = web.Application()
        if self.trading is not None:  # first: /ws/<listenKey> must win over /ws/<streams>
            install_trading(self.trading, rest_app, shared_ws, futures_ws)
        if self.lockstep is not None:
            rest_app.router.add_get(CONTROL_PATH, self.lockstep.handle)
        add_stream_routes(shared_ws, self.state, WsSite(Market.SPOT))
        add_stream_routes(futures_ws, self.state, WsSite(Market.FUTURES))
        ports = [options.port + offset if options.port else 0 for offset in range(3)]
        urls = []
        for app, port, scheme in zip((rest_app, shared_ws, futures_ws), ports, ("http", "ws", "ws"), strict=True):
            runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
            await runner.setup()
            self._runners.append(runner)
            site = web.TCPSite(runner, options.host, port, reuse_address=True)
            try:
                await site.start()
            except OSError as exc:
                await self.stop()
                reason = exc.strerror or str(exc)
                raise KestrelError(f"cannot listen on {options.host}:{port}: {reason.lower()}") from None
            bound = runner.addresses[0][1]
            urls.append(f"{scheme}://{options.host}:{bound}")
        self.rest_url, self.ws_url, self.futures_ws_url = urls
        self._tasks = [
            asyncio.create_task(housekeeping(self.state), name="sim-housekeeping"),
            asyncio.create_task(self._fault_schedule(), name="sim-faults"),
        ]
        if self.lockstep is None:  # lockstep: the session's step loop publishes instead
            self._tasks.append(asyncio.create_task(self._pump(), name="sim-pump"))
        if self.trading is not None:
            self.trading.start()
        log.info("simulator started", rest=self.rest_url, ws=self.ws_url, futures_ws=self.futures_ws_url)

    async def stop(self) -> None:
        if self.trading is not None:
            await self.trading.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        self.hub.flush_held()
        for connection in list(self.hub.connections.values()):
            connection.request_close("server stopping")
        await asyncio.sleep(0)
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners = []

    async def _pump(self) -> None:
        """Advance the source with the clock, a bounded number of events per turn so the loop (client
        I/O, control messages, signals) never waits long; an overloaded generator falls behind (and
        says so in the stats) instead of freezing the server."""
        source, hub, timeline, stats = self.source, self.hub, self.timeline, self.stats_data
        while True:
            if timeline.as_fast_as_possible:
                if hub.backlog() > _FAST_BACKLOG_FRAMES:
                    await asyncio.sleep(0.001)  # as fast as the clients take it, not faster
                    continue
                processed = source.advance(timeline.now_ns(), _EVENTS_PER_TURN)
                hub.flush_delayed(timeline.monotonic_s())
                await asyncio.sleep(0 if processed else 0.005)
                continue
            now_ns = timeline.now_ns()
            source.advance(now_ns, _EVENTS_PER_TURN)
            hub.flush_delayed(timeline.monotonic_s())
            next_ns = source.next_event_ns()
            if next_ns is not None and next_ns < now_ns:
                behind_ms = (now_ns - next_ns) // NANOS_PER_MILLI
                stats.max_behind_ms = max(stats.max_behind_ms, behind_ms)
                await asyncio.sleep(0)
                continue
            wait_s = _IDLE_SLEEP_S if next_ns is None else timeline.seconds_until(next_ns)
            next_delayed = hub.next_delayed_s()
            if next_delayed is not None:
                wait_s = min(wait_s, next_delayed - timeline.monotonic_s())
            # never below the loop's 1 ms timer resolution: shorter sleeps would spin the pump
            await asyncio.sleep(min(max(wait_s, _MIN_SLEEP_S), _IDLE_SLEEP_S))

    async def _fault_schedule(self) -> None:
        """The periodic connection faults of the plan (disconnects, stalls, shutdown notices)."""
        last: dict[str, float] = {}
        while True:
            await asyncio.sleep(0.05)
            plan = self._injector.plan
            periods = {
                "disconnect": plan.disconnect_every_s,
                "stall": plan.stall_every_s,
                "shutdown": plan.shutdown_notice_every_s,
            }
            for name in periodic_faults_due(last, periods, self.timeline.monotonic_s()):
                if name == "disconnect":
                    self.disconnect_all(plan.disconnect_fraction)
                elif name == "stall":
                    self.stall_all(plan.stall_duration_s)
                else:
                    self.send_shutdown_notice()

    # ---- test API -----------------------------------------------------------------------------
    @property
    def spot(self) -> MarketEndpoints:
        return MarketEndpoints(self.rest_url, self.ws_url)

    @property
    def futures(self) -> MarketEndpoints:
        return MarketEndpoints(self.rest_url, self.futures_ws_url)

    def urls(self) -> dict[str, Any]:
        """The start-up line's content."""
        return {
            "rest_url": self.rest_url,
            "ws_url": self.ws_url,
            "spot": {"rest_url": self.rest_url, "ws_url": self.ws_url},
            "futures": {"rest_url": self.rest_url, "ws_url": self.futures_ws_url},
        }

    def replay_finished(self) -> bool:
        """A replay has sent its last frame (always False for the synthetic market)."""
        return self.source.finished()

    async def wait_replay_finished(self, timeout_s: float = 60.0) -> None:
        deadline = self.timeline.monotonic_s() + timeout_s
        while not self.source.finished():
            if self.timeline.monotonic_s() > deadline:
                raise TimeoutError("the replay did not finish in time")
            await asyncio.sleep(0.01)

    def symbols(self, market: Market) -> list[str]:
        return [spec.symbol for spec in self.source.specs(market)]

    def book(self, market: Market, symbol: str, limit: int | None = None) -> BookView:
        """The simulator's current book of `symbol` (bids best first, asks best first, Decimal levels)."""
        return self.source.book_view(market, symbol.upper(), limit)

    def book_at(self, market: Market, symbol: str, update_id: int) -> BookView:
        """The book right after `update_id` (a recent id: the undo log keeps `book_history_updates`)."""
        return self.source.book_view_at(market, symbol.upper(), update_id)

    def stats(self) -> dict[str, Any]:
        data = self.stats_data.as_dict()
        if self.trading is not None:
            data["trading"] = self.trading.stats()
        if self.lockstep is not None:
            data["lockstep"] = self.lockstep.stats()
        return data

    def server_time_ms(self) -> int:
        return self.timeline.server_ms()

    @property
    def faults(self) -> FaultPlan:
        return self._injector.plan

    def set_faults(self, plan: FaultPlan) -> None:
        """Replace the fault plan (its generator restarts from the plan's seed)."""
        pending = self._injector.pending_gaps
        self._injector = FaultInjector(plan, self.options.seed)
        self._injector.pending_gaps.update(pending)
        self.hub.faults = self._injector
        self.state.faults = self._injector
        self.set_clock_skew_ms(plan.clock_skew_ms)

    def set_clock_skew_ms(self, skew_ms: int) -> None:
        self.timeline.skew_ns = skew_ms * NANOS_PER_MILLI
        self.source.set_skew_ns(self.timeline.skew_ns)

    def inject_gap(self, market: Market, symbol: str, count: int = 1) -> None:
        """Withhold the next `count` diff-depth messages of `symbol` that have a subscriber (consecutive
        messages of one stream make one gap)."""
        key = (market.value, symbol.upper())
        self._injector.pending_gaps[key] = self._injector.pending_gaps.get(key, 0) + count

    def disconnect_all(self, fraction: float = 1.0) -> int:
        """Close every connection (or a random `fraction` of them); returns how many."""
        connections = [c for c in self.hub.connections.values() if not c.closed]
        if fraction < 1.0:
            rng = self._injector.connection_rng
            connections = rng.sample(connections, max(1, round(len(connections) * fraction))) if connections else []
        for connection in connections:
            connection.request_close("disconnect injected")
        self.stats_data.connections.disconnects_injected += len(connections)
        return len(connections)

    def stall_all(self, seconds: float) -> int:
        """Freeze every connection for `seconds` (frames queue up and arrive late)."""
        until = self.timeline.monotonic_s() + seconds
        connections = [c for c in self.hub.connections.values() if not c.closed]
        for connection in connections:
            connection.stalled_until_s = until
        self.stats_data.connections.stalls_injected += len(connections)
        return len(connections)

    def send_shutdown_notice(self, grace_s: float = 0.5) -> int:
        """Spot: send `serverShutdown` on every spot connection, then close them after `grace_s`."""
        import orjson

        event = {"e": "serverShutdown", "E": self.server_time_ms()}
        raw = orjson.dumps(event)
        wrapped = orjson.dumps({"stream": "!serverShutdown", "data": event})
        targets = [c for c in self.hub.connections.values() if c.market is Market.SPOT and not c.closed]
        for connection in targets:
            connection.push(wrapped if connection.combined else raw)
        self.stats_data.connections.shutdown_notices_injected += len(targets)

        def close_all() -> None:
            for connection in targets:
                connection.request_close("server shutdown")

        asyncio.get_running_loop().call_later(grace_s, close_all)
        return len(targets)

    async def wait_for_subscribers(self, market: Market, streams: int, timeout_s: float = 10.0) -> None:
        """Wait until `streams` distinct streams of `market` have a subscriber."""
        deadline = self.timeline.monotonic_s() + timeout_s
        while len(self.hub.subscribed_streams(market)) < streams:
            if self.timeline.monotonic_s() > deadline:
                raise TimeoutError(f"only {len(self.hub.subscribed_streams(market))} of {streams} streams subscribed")
            await asyncio.sleep(0.01)
