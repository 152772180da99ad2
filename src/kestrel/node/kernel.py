"""`TradingNode`: a strategy trading live market data, in paper or live mode.

Built in one place (`TradingNode.start`) from configuration: LiveClock, message bus, the market-data
feed, the venue, the ledger, the risk engine and the guard around the venue, then the strategy bound
to them. What differs between modes is only what is injected:

- paper, `VenueKind.SIMULATED`: our matching engine fed by the same live market data, behind
  `SimVenue` with the configured order latency — a fill here comes from the same function as in a
  backtest;
- paper or live, `VenueKind.BINANCE`: the Binance REST + user-data adapter, pointed at the local
  simulator or at the exchange by the venue URLs of the configuration.

Market events arrive on the bus from the feed; the node applies them to the engine (simulated venue),
then calls the strategy's callbacks, then lets due venue deliveries and timers run. Strategy exceptions
are contained (counted, logged, the node goes on); a ledger failure stops new orders, never the node.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Literal

from kestrel.binance.transfers import BinanceWalletTransfers
from kestrel.binance.venue import BinanceVenue
from kestrel.binance.venue_settings import BinanceVenueSettings
from kestrel.config.loading import config_revision, masked_dict
from kestrel.config.models import KestrelConfig
from kestrel.core.bus import MessageBus
from kestrel.core.clock import Clock, LiveClock
from kestrel.core.enums import Market
from kestrel.core.errors import ConfigurationError
from kestrel.core.events import (
    AggregateTrade,
    DepthSnapshot,
    DepthUpdate,
    FundingRate,
    Kline,
    MarkPrice,
    Trade,
)
from kestrel.core.identifiers import Symbol
from kestrel.core.instrument import GridFilter, Instrument
from kestrel.core.logs import get_logger
from kestrel.core.orders import Fill
from kestrel.core.venue import AccountUpdate, BookView, OrderSnapshot, OrderUpdate, Venue, VenueEvent
from kestrel.execution.guard import GuardedVenue
from kestrel.execution.reconcile import OrphanPolicy, ReconcileReport
from kestrel.execution.reconcile_apply import Outcome
from kestrel.execution.transfers import EngineTransfers, TransferManager, TransferTransport
from kestrel.marketdata.feed import MarketDataFeed
from kestrel.matching.engine import EngineSettings, MatchingEngine
from kestrel.matching.settings import engine_settings, order_latency
from kestrel.matching.venue import SimVenue
from kestrel.node.books import LiveBookView
from kestrel.node.pacing import LockstepPacer
from kestrel.node.reconciler import NodeReconciler
from kestrel.node.records import write_node_run
from kestrel.node.wallet import WalletKeeper
from kestrel.risk.limits import RiskEngine
from kestrel.storage.ledger import Ledger
from kestrel.strategy.base import Strategy, StrategyContext

log = get_logger(__name__)
NANOS_PER_SECOND = 1_000_000_000
PAPER_ACCOUNT = "paper"
_MAX_TIMER_FAILURES_PER_PUMP = 100


def _warm_up(settings: EngineSettings) -> None:
    """Exercise a throwaway engine once so the compiled kernels are built before live data flows
    (the first call would otherwise stall the event loop for the compile)."""
    instrument = Instrument(
        Symbol("WARMUSDT"), Market.FUTURES, "WARM", "USDT",
        GridFilter("PRICE_FILTER", Decimal("0.1"), Decimal(1_000_000), Decimal("0.1")),
        GridFilter("LOT_SIZE", Decimal("0.001"), Decimal(1000), Decimal("0.001")), margin_asset="USDT",
    )  # fmt: skip
    engine = MatchingEngine([instrument], settings)
    engine.open_account("warm-up", spot_balances={instrument.quote_asset: Decimal(10**9)},
                        futures_balances={"USDT": Decimal(10**9)})  # fmt: skip
    tick = float(instrument.tick_size)
    price = float(instrument.price_filter.minimum or instrument.tick_size) + 1000 * tick
    market, symbol = instrument.market, str(instrument.symbol)
    engine.apply(DepthSnapshot(market, symbol, 1, [(price, 1.0)], [(price + tick, 1.0)], 1, 1))
    engine.apply(DepthUpdate(market, symbol, 2, 2, 1, [(price - tick, 1.0)], [], 2, 2))
    engine.apply(Trade(market, symbol, 1, price, 0.5, True, 3, 3))


class VenueKind(StrEnum):
    SIMULATED = "simulated"  # our matching engine on the live data (paper only)
    BINANCE = "binance"  # REST + user data streams to the configured URLs


@dataclass
class NodeSummary:
    mode: str
    venue: str
    strategy: str
    duration_s: float = 0.0
    market_events: int = 0
    orders: int = 0
    fills: int = 0
    rejections: int = 0
    strategy_errors: int = 0
    realized_pnl: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    equity: Decimal = Decimal(0)
    start_equity: Decimal = Decimal(0)
    positions: dict[str, str] = field(default_factory=dict)
    gaps: int = 0
    resyncs: int = 0
    config_revision: str = ""

    def lines(self) -> list[str]:
        pnl = self.equity - self.start_equity
        positions = ", ".join(f"{k} {v}" for k, v in self.positions.items()) or "flat"
        return [
            f"{self.mode} run of '{self.strategy}' on the {self.venue} venue, {self.duration_s:.1f} s, "
            f"config {self.config_revision}",
            f"market events {self.market_events}, data gaps {self.gaps} (resyncs {self.resyncs})",
            f"orders {self.orders}, fills {self.fills}, rejections {self.rejections}, "
            f"strategy errors {self.strategy_errors}",
            f"equity {self.equity:.4f} USDT (PnL {pnl:+.4f}, fees {self.fees:.4f}); positions: {positions}",
        ]


class TradingNode:
    def __init__(
        self,
        config: KestrelConfig,
        strategy: Strategy,
        *,
        mode: Literal["paper", "live"] = "paper",
        venue_kind: VenueKind = VenueKind.SIMULATED,
        clock: Clock | None = None,
        status: Callable[[str], None] | None = None,
        status_interval_s: float = 1.0,
        pacer: LockstepPacer | None = None,
    ) -> None:
        if mode == "live" and venue_kind is not VenueKind.BINANCE:
            raise ConfigurationError("live trading needs the Binance venue (simulated fills are paper only)")
        if pacer is not None and (mode == "live" or venue_kind is not VenueKind.BINANCE):
            raise ConfigurationError("lockstep pacing is a paper test mode against the simulator's Binance API")
        self.config = config
        self.strategy = strategy
        self.mode = mode
        self.venue_kind = venue_kind
        self.clock = clock or LiveClock()
        self.bus = MessageBus()
        self.status = status
        self.status_interval_s = status_interval_s
        self.feed = MarketDataFeed(config, self.clock, bus=self.bus)
        self.ledger: Ledger | None = None
        self.engine: MatchingEngine | None = None
        self.sim_venue: SimVenue | None = None
        self.binance: BinanceVenue | None = None
        self.reconcile_report: ReconcileReport | None = None
        self.reconciler: NodeReconciler | None = None
        self.venue: GuardedVenue | None = None
        self.risk: RiskEngine | None = None
        self.wallet: WalletKeeper | None = None
        self.books: dict[tuple[Market, str], BookView] = {}
        self.instruments: dict[tuple[Market, str], Instrument] = {}
        self.summary = NodeSummary(mode, venue_kind.value, strategy.name, config_revision=config_revision(config))
        self._subscriptions = strategy.subscriptions()
        self._orders: dict[str, OrderSnapshot] = {}  # last known state per client order id, in first-seen order
        self._fills: list[Fill] = []
        self.run_dir: Path | None = None
        self._started_ns = 0
        self._stopping = asyncio.Event()
        self.pacer = pacer  # the simulator's lockstep test mode only (kestrel.node.pacing)

    # ---- life cycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        config = self.config
        self._started_ns = self.clock.timestamp_ns()
        self.ledger = Ledger(config.storage.ledger_url, config.storage.ledger_sqlite_synchronous)
        self.ledger.migrate()
        self.ledger.record_config_revision(self.summary.config_revision, masked_dict(config), self._started_ns)
        if self.venue_kind is VenueKind.SIMULATED:
            _warm_up(engine_settings(config.matching))  # before any socket is open: the compile blocks
        await self.feed.start()
        self.instruments = dict(self.feed.registry.instruments)
        if not self.instruments:
            raise ConfigurationError("no instrument to trade: check data.ingest.symbols and markets")
        inner = await self._build_venue()
        equity = self._equity(inner)
        self.summary.start_equity = equity
        self.risk = RiskEngine(config.risk, equity if equity > 0 else Decimal(1), self._started_ns)
        self.venue = GuardedVenue(
            inner, self.clock, self.ledger, self.risk, id_prefix=f"node{self._started_ns}",
            leverage=config.risk.leverage, mark_of=self._mark,
        )  # fmt: skip
        if self.binance is not None:
            await self._reconcile_at_start(self.binance, self.venue)
        self.venue.set_event_handler(self._on_venue_event)  # after the start-up fixes: they are not news
        self.wallet = self._build_wallet_keeper()
        for market, symbol in self.instruments:
            self._book(market, symbol)  # every view exists before the strategy first asks for one
        self.strategy.bind(StrategyContext(self.venue, self.clock, self.instruments, self.books))
        self.bus.subscribe("data.*", self._on_market)
        self._guarded(self.strategy.on_start)

    async def _build_venue(self) -> Venue:
        config = self.config
        if self.venue_kind is VenueKind.BINANCE:
            settings = BinanceVenueSettings.from_config(config.venue, markets=tuple(config.data.ingest.markets))
            venue = BinanceVenue(settings, self.clock)
            await venue.start()
            self.binance = venue
            return venue
        engine = MatchingEngine(list(self.instruments.values()), engine_settings(config.matching))
        engine.open_account(
            PAPER_ACCOUNT,
            spot_balances=dict(config.backtest.spot_balances),
            futures_balances=dict(config.backtest.futures_balances),
        )
        self.engine = engine
        self.sim_venue = SimVenue(engine, PAPER_ACCOUNT, self.clock, order_latency(config.matching, config.seed))
        return self.sim_venue

    def _build_wallet_keeper(self) -> WalletKeeper | None:
        """R-EX-6 when configured: a refusal for want of balance moves money from the other wallet."""
        config = self.config
        if not config.execution.transfers_enabled:
            return None
        transport: TransferTransport
        if self.sim_venue is not None:
            transport = EngineTransfers(self.sim_venue)
        elif self.binance is not None and Market.SPOT in self.binance.http:
            transport = BinanceWalletTransfers(self.binance.http[Market.SPOT], self.clock)
        else:
            log.warning("wallet transfers need the spot API (add 'spot' to data.ingest.markets); they are off")
            return None
        inner = self.sim_venue or self.binance
        assert inner is not None

        def free(market: Market, asset: str) -> Decimal:
            for balance in inner.balances(market):
                if balance.asset == asset:  # futures: the available balance (the exchange refuses the rest)
                    return balance.free
            return Decimal(0)

        manager = TransferManager(transport, self.clock, config.execution, free, self.ledger, f"tr{self._started_ns}")
        return WalletKeeper(manager, config.risk.leverage, self._mark)

    async def _reconcile_at_start(self, venue: BinanceVenue, guard: GuardedVenue) -> ReconcileReport:
        """Crash recovery is the start-up path: the ledger's unfinished orders, positions and missing
        fills against the exchange's, every correction applied and audited (`NodeReconciler`)."""
        assert self.ledger is not None
        config = self.config
        # "safe" to adopt: a position within what the risk limits would let the node open itself
        budget = (
            self.summary.start_equity * Decimal(str(config.risk.max_capital_in_use_pct)) / 100 * config.risk.leverage
        )
        self.reconciler = NodeReconciler(
            self.ledger, venue, guard, self.clock, OrphanPolicy(config.execution.orphan_policy),
            config.execution.reconcile_interval_s, max_adopt_notional_usdt=budget,
        )  # fmt: skip
        report = await self.reconciler.run_once(at_start=True)
        self.reconcile_report = report
        unsettled = [a for a in self.reconciler.applied if a.outcome != Outcome.APPLIED]
        if self.mode == "live" and unsettled:
            raise ConfigurationError(
                f"reconciliation left {len(unsettled)} correction(s) unsettled (see the ledger's 'reconcile.fix' "
                "audit events): resolve them before trading live"
            )
        return report

    async def run(self, duration_s: float | None = None) -> NodeSummary:
        """Start, trade for `duration_s` once started (or until `request_stop()`), stop cleanly."""
        await self.start()
        self._started_ns = self.clock.timestamp_ns()
        if self.pacer is not None:
            self.pacer.start(self)
        try:
            await self._loop(duration_s)
        finally:
            await self.stop()
        return self.summary

    def request_stop(self) -> None:
        self._stopping.set()

    def kill(self, reason: str) -> int:
        """The kill switch, by hand: no new exposure, every open order cancelled and every position
        closed, swept again until flat (`GuardedVenue.kill`). Returns the commands sent at once."""
        if self.venue is None:
            raise ConfigurationError("the node is not started: nothing to kill")
        return self.venue.kill(reason)

    async def _loop(self, duration_s: float | None) -> None:
        try:
            await self._trade(duration_s)
        finally:  # a pass cut short is harmless (every fix is idempotent); the next start redoes it
            if self.reconciler is not None:
                await self.reconciler.stop()

    async def _trade(self, duration_s: float | None) -> None:
        deadline = None if duration_s is None else self._started_ns + int(duration_s * NANOS_PER_SECOND)
        next_status = self.clock.timestamp_ns()
        while not self._stopping.is_set():
            now = self.clock.timestamp_ns()
            if deadline is not None and now >= deadline:
                break
            self._pump(now)
            if self.reconciler is not None:  # periodic and on-alert passes, one at a time
                self.reconciler.poll(now)
            if self.status is not None and now >= next_status:
                self.status(self.status_line())
                next_status = now + int(self.status_interval_s * NANOS_PER_SECOND)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=0.001)

    def _pump(self, now: int) -> None:
        if self.sim_venue is not None:
            self.sim_venue.process_due(now)
        for _ in range(_MAX_TIMER_FAILURES_PER_PUMP):
            try:
                self.clock.fire_due_timers(now)
                return
            except Exception as error:  # a timer callback (a strategy's on_timer) must not stop the node;
                # the raising timer is already off the heap (or rescheduled), so the rest still fire
                self.summary.strategy_errors += 1
                log.error("timer callback raised", error=repr(error))

    async def stop(self) -> None:
        if self.pacer is not None:
            await self.pacer.stop()
        self._guarded(self.strategy.on_stop)
        if self.wallet is not None:  # a transfer under way is finished and recorded, never dropped
            await self.wallet.drain()
        if self.binance is not None:  # let in-flight commands finish and their answers arrive
            await self.binance.drain(timeout_s=10.0)
            await self.binance.stop()
        if self.sim_venue is not None:  # let in-flight responses arrive
            self.sim_venue.process_due(self.clock.timestamp_ns() + 60 * NANOS_PER_SECOND)
        await self.feed.stop()
        self._finish_summary()
        self.run_dir = self.config.storage.data_dir / "runs" / f"{self.mode}-{self._started_ns}"
        write_node_run(self.run_dir, list(self._orders.values()), self._fills, self.summary.__dict__)
        if self.ledger is not None:
            self.ledger.audit("node.stopped", {"summary": self.summary.lines()}, self.clock.timestamp_ns())
            self.ledger.close()

    # ---- events ----------------------------------------------------------------------------------
    def _on_market(self, event: object) -> None:
        self.summary.market_events += 1
        if (
            self.engine is not None
            and self.sim_venue is not None
            and isinstance(event, DepthUpdate | DepthSnapshot | Trade | AggregateTrade | MarkPrice | FundingRate)
        ):
            self.sim_venue.on_engine_events(self.engine.apply(event))
        if isinstance(event, MarkPrice) and self.risk is not None:
            self.risk.on_price(event.market, event.symbol, event.mark_price, event.ts_init)
        subscriptions = self._subscriptions
        if isinstance(event, DepthUpdate | DepthSnapshot):
            if "on_book" in subscriptions:
                book = self._book(event.market, event.symbol)
                if book is not None:
                    self._guarded(self.strategy.on_book, book)
        elif isinstance(event, Trade | AggregateTrade):
            if "on_trade" in subscriptions:
                self._guarded(self.strategy.on_trade, event)
        elif isinstance(event, Kline):
            if event.is_closed and "on_kline" in subscriptions:
                self._guarded(self.strategy.on_kline, event)
        elif isinstance(event, MarkPrice | FundingRate) and "on_funding" in subscriptions:
            self._guarded(self.strategy.on_funding, event)
        self._pump(self.clock.timestamp_ns())

    def _on_venue_event(self, event: VenueEvent) -> None:
        if self.wallet is not None:
            self.wallet.on_event(event)
        if isinstance(event, OrderUpdate):
            self._orders[event.order.client_order_id] = event.order
            if event.fill is not None:
                self._fills.append(event.fill)
            if event.execution_type.value == "NEW":
                self.summary.orders += 1
            if event.execution_type.value == "REJECTED":
                self.summary.rejections += 1
            if event.fill is not None:
                self.summary.fills += 1
                self.summary.fees += event.fill.fee
            if "on_order_update" in self._subscriptions:
                self._guarded(self.strategy.on_order_update, event)
        elif isinstance(event, AccountUpdate) and "on_account_update" in self._subscriptions:
            self._guarded(self.strategy.on_account_update, event)

    def _guarded(self, callback: Callable[..., None], *arguments: object) -> None:
        try:
            callback(*arguments)
        except Exception as error:  # user strategy code must never take the node down
            self.summary.strategy_errors += 1
            log.error("strategy callback raised", callback=getattr(callback, "__name__", "?"), error=repr(error))

    # ---- views -----------------------------------------------------------------------------------
    def _book(self, market: Market, symbol: str) -> BookView | None:
        """The strategy's view of a symbol's synchronised book (made on first use; the dict is the
        same one the strategy context holds, so `Strategy.book()` sees it too)."""
        key = (market, symbol)
        view = self.books.get(key)
        if view is None:
            instrument = self.instruments.get(key)
            if instrument is None:
                return None
            view = self.books[key] = LiveBookView(self.feed.sequencer.symbol(market, symbol).book.book, instrument)
        return view

    def _mark(self, market: Market, symbol: str) -> Decimal | None:
        book = self._book(market, symbol)
        mid = book.mid if book is not None else None
        return Decimal(repr(mid)) if mid is not None else None

    def _equity(self, venue: Venue) -> Decimal:
        total = Decimal(0)
        for market in (Market.SPOT, Market.FUTURES):
            for balance in venue.balances(market):
                if balance.asset == "USDT":
                    total += balance.margin_balance if market is Market.FUTURES else balance.wallet
                else:
                    mark = self._mark(market, f"{balance.asset}USDT") if market is Market.SPOT else None
                    total += balance.wallet * mark if mark is not None else Decimal(0)
        return total

    def status_line(self) -> str:
        venue = self.venue
        open_orders = len(venue.open_orders()) if venue is not None else 0
        positions = venue.positions() if venue is not None else []
        equity = self._equity(venue) if venue is not None else Decimal(0)
        risk = "KILLED" if self.risk is not None and self.risk.kill_switch_engaged else "ok"
        quality = self.feed.stats()["total"]
        return (
            f"[{(self.clock.timestamp_ns() - self._started_ns) / 1e9:7.1f}s] events {self.summary.market_events} "
            f"gaps {quality.get('gaps_detected', 0)} | orders {self.summary.orders} open {open_orders} "
            f"fills {self.summary.fills} rej {self.summary.rejections} | positions {len(positions)} | "
            f"equity {equity:.2f} USDT | risk {risk}"
        )

    def _finish_summary(self) -> None:
        summary = self.summary
        summary.duration_s = (self.clock.timestamp_ns() - self._started_ns) / NANOS_PER_SECOND
        if self.venue is not None:
            summary.equity = self._equity(self.venue)
            summary.positions = {p.symbol: f"{p.quantity}" for p in self.venue.positions()}
            summary.realized_pnl = sum((p.realized_pnl for p in self.venue.positions()), Decimal(0))
        with contextlib.suppress(Exception):
            totals = self.feed.stats()["total"]
            summary.gaps = int(totals.get("gaps_detected", 0))
            summary.resyncs = int(totals.get("resyncs", 0))
