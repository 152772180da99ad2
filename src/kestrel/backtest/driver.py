"""The event-driven backtest: replayed market data + SimClock + SimVenue + a strategy.

One global timeline in integer nanoseconds. The kernel advances market data on the exchange side (at
exchange time) and on the strategy side (at local time = exchange time + feed latency); the driver stops
it at each moment something else is due: a command reaching the exchange, an engine event reaching the
strategy, a strategy timer, scheduled funding, an equity sample. At one nanosecond the order is fixed
(market data, then the engine's schedule, then arrivals and deliveries, then timers), so the same data
and seed always give the same run.
"""

from __future__ import annotations

import gc
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from kestrel.core.clock import SimClock
from kestrel.core.enums import Market
from kestrel.core.errors import StrategyError
from kestrel.core.events import FundingRate, Kline, MarkPrice
from kestrel.core.instrument import Instrument
from kestrel.core.orders import Fill
from kestrel.core.venue import AccountUpdate, BookView, ExecutionType, OrderSnapshot, OrderUpdate, VenueEvent
from kestrel.matching import kernel as k
from kestrel.matching.engine import EngineEvent, EngineSettings, MatchingEngine
from kestrel.matching.latency import OrderLatency
from kestrel.matching.rows import EventTable
from kestrel.matching.venue import SimVenue
from kestrel.strategy.base import Strategy, StrategyContext

ACCOUNT = "backtest"
QUOTE = "USDT"
_NOTIFY = {
    "on_book": k.FLAG_NOTIFY_BOOK,
    "on_trade": k.FLAG_NOTIFY_TRADE,
    "on_kline": k.FLAG_NOTIFY_OTHER,
    "on_funding": k.FLAG_NOTIFY_OTHER,
}
_FOREVER = (1 << 63) - 1
_PLAN_AGAIN = -1  # the next stop time may have moved: compute it again


@dataclass(slots=True)
class BacktestSetup:
    instruments: Sequence[Instrument]
    table: EventTable
    strategy: Strategy
    settings: EngineSettings = field(default_factory=EngineSettings)
    order_latency: OrderLatency | None = None
    spot_balances: Mapping[str, Decimal] = field(default_factory=dict)
    futures_balances: Mapping[str, Decimal] = field(default_factory=dict)
    bar_symbols: frozenset[tuple[Market, str]] = frozenset()
    equity_interval_ns: int = 60 * 1_000_000_000
    drain_after_ns: int = 5 * 1_000_000_000  # after the data ends, in-flight responses still arrive
    # False: stop the kernel at every distinct row time and deliver each event the strategy wants on
    # its own (the reference the batched run must equal; tests compare the two). True: run compiled
    # over all rows until something is due, callbacks through the driver's tight loop.
    batch: bool = True


@dataclass(slots=True)
class EquityPoint:
    ts: int
    equity: float
    gross_exposure: float  # Σ |position notional| (futures) + Σ non-quote spot holdings, in quote


@dataclass(slots=True)
class BacktestResult:
    fills: list[Fill]
    orders: list[OrderSnapshot]
    equity: list[EquityPoint]
    funding: list[tuple[int, str, Decimal]]
    mid_at_send: dict[str, float]
    start_equity: float
    final_balances: dict[str, Decimal]
    rows: int
    callbacks: int
    commands: int
    liquidations: int
    book_gaps: dict[str, int]
    wall_seconds: float = 0.0

    def fills_hash(self) -> str:
        """SHA-256 of the fill list in a canonical text form: equal hashes ⇔ identical fills."""
        digest = hashlib.sha256()
        for fill in self.fills:
            digest.update(
                f"{fill.ts_event}|{fill.symbol}|{fill.side.value}|{fill.price}|{fill.quantity}|{fill.fee}|"
                f"{fill.fee_asset}|{fill.liquidity.value}|{fill.realized_pnl}|{fill.client_order_id}\n".encode()
            )
        return digest.hexdigest()


class Backtest:
    """One run. `run()` returns the result; the object is single-use."""

    def __init__(self, setup: BacktestSetup) -> None:
        self.setup = setup
        self.engine = MatchingEngine(setup.instruments, setup.settings, setup.bar_symbols)
        self.engine.open_account(ACCOUNT, setup.spot_balances, setup.futures_balances)
        self.engine.load(setup.table)
        rows = setup.table.rows
        start = int(rows[0, k.COL_TS_EXCH]) if len(rows) else 0
        self.clock = SimClock(start)
        self.venue = SimVenue(self.engine, ACCOUNT, self.clock, setup.order_latency)
        self.books: dict[int, BookView] = {}
        books: dict[tuple[Market, str], BookView] = {}
        for index, instrument in enumerate(setup.instruments):
            view = self.engine.book(instrument.market, instrument.symbol, local=True)
            self.books[index] = view
            books[(instrument.market, str(instrument.symbol))] = view
        self.venue.mid_of = lambda market, symbol: books[(market, symbol)].mid
        instruments: dict[tuple[Market, str], Instrument] = {(i.market, str(i.symbol)): i for i in setup.instruments}
        self.strategy = setup.strategy
        self.strategy.bind(StrategyContext(self.venue, self.clock, instruments, books))
        subscriptions = self.strategy.subscriptions()
        self.notify_mask = 0
        for callback, flag in _NOTIFY.items():
            if callback in subscriptions:
                self.notify_mask |= flag
        self.venue.set_event_handler(self._on_venue_event)
        self.equity: list[EquityPoint] = []
        self.callbacks = 0
        self.refused: list[OrderSnapshot] = []
        self._wants_orders = "on_order_update" in subscriptions
        self._wants_account = "on_account_update" in subscriptions

    # ---- strategy calls, isolated ------------------------------------------------------------------
    def _call(self, name: str, function: Callable[..., None], *args: object) -> None:
        self.callbacks += 1
        try:
            function(*args)
        except StrategyError:
            raise
        except Exception as exc:
            raise StrategyError(f"{self.strategy.name}.{name} raised {type(exc).__name__}: {exc}") from exc

    def _on_venue_event(self, event: VenueEvent) -> None:
        if isinstance(event, OrderUpdate):
            if event.execution_type is ExecutionType.REJECTED and not event.order.order_id:
                self.refused.append(event.order)  # refused on arrival: never in the engine's orders
            if self._wants_orders:
                self._call("on_order_update", self.strategy.on_order_update, event)
        elif isinstance(event, AccountUpdate) and self._wants_account:
            self._call("on_account_update", self.strategy.on_account_update, event)

    def _dispatch_row(self, row: int) -> None:
        table = self.setup.table
        rows = table.rows
        self.clock.advance_to(int(rows[row, k.COL_TS_LOCAL]))
        kind = int(rows[row, k.COL_KIND])
        strategy = self.strategy
        if kind == k.KIND_TRADE_BUY or kind == k.KIND_TRADE_SELL:
            self._call("on_trade", strategy.on_trade, table.objects[int(rows[row, k.COL_REF])])
        elif kind == k.KIND_PYTHON:
            self._dispatch_python(table.objects[int(rows[row, k.COL_REF])])
        else:
            self._call("on_book", strategy.on_book, self.books[int(rows[row, k.COL_SYMBOL])])

    def _dispatch_python(self, event: object) -> None:
        if isinstance(event, Kline):
            self._call("on_kline", self.strategy.on_kline, event)
        elif isinstance(event, FundingRate | MarkPrice):
            self._call("on_funding", self.strategy.on_funding, event)

    def _notify_loop(self, stop: int) -> int:
        """Deliver consecutive market events to the strategy with as little Python as possible.

        This is the hot path of callback strategies: it calls the kernel directly and re-plans (returns
        _PLAN_AGAIN) as soon as the strategy did something that can move the next stop (a command or a
        timer). The order of events is exactly that of `run_until` + `_dispatch_row`.
        """
        engine, venue, clock, strategy = self.engine, self.venue, self.clock, self.strategy
        state = engine.state
        table = self.setup.table
        rows, objects, books = table.rows, table.objects, self.books
        on_book, on_trade = strategy.on_book, strategy.on_trade
        venue_next, timer_next, advance = venue.next_due_ns, clock.next_timer_ns, clock.advance_to
        venue_due, timer_due = venue_next(), timer_next()
        mask = self.notify_mask
        run = engine.run_kernel
        # these arrays are never replaced; the order arrays may grow, but only when a command reaches
        # the engine, which happens outside this loop (a command returns _PLAN_AGAIN first)
        ctl, sym_state, lots, params = state.ctl, state.sym_state, state.lots, state.params
        row_of = k.CTL_ROW
        trade_buy, trade_sell, python_row, notify = (
            k.KIND_TRADE_BUY,
            k.KIND_TRADE_SELL,
            k.KIND_PYTHON,
            k.STATUS_LOCAL_NOTIFY,
        )
        delivered = 0
        status = notify
        try:
            while status == notify:
                _, ts_local, kind, sym, _, _, ref, _ = rows[ctl[row_of]].tolist()
                advance(ts_local)
                delivered += 1
                if kind in (trade_buy, trade_sell):
                    on_trade(objects[ref])
                elif kind == python_row:
                    self._dispatch_python(objects[ref])
                else:
                    on_book(books[sym])
                if venue_next() != venue_due or timer_next() != timer_due:
                    return _PLAN_AGAIN
                status = run(rows, ctl, sym_state, lots, state.orders, state.ahead, state.out, params, stop, mask)
        except StrategyError:
            raise
        except Exception as exc:
            raise StrategyError(f"{strategy.name} raised {type(exc).__name__}: {exc}") from exc
        finally:
            self.callbacks += delivered
        outcome = engine.after_kernel(status)
        return _PLAN_AGAIN if outcome is None else outcome

    # ---- the loop ----------------------------------------------------------------------------------
    def run(self) -> BacktestResult:
        # The loaded events hold millions of small objects that never form cycles; freezing them keeps
        # the cyclic collector from re-scanning them on every collection (it otherwise costs more than
        # the matching itself). They are unfrozen when the run ends.
        gc.freeze()
        try:
            return self._run()
        finally:
            gc.unfreeze()

    def _run(self) -> BacktestResult:
        started = time.perf_counter()
        engine, venue, clock = self.engine, self.venue, self.clock
        rows = self.setup.table.rows
        end_of_data = int(rows[-1, k.COL_TS_LOCAL]) if len(rows) else clock.timestamp_ns()
        hard_stop = end_of_data + self.setup.drain_after_ns
        interval = self.setup.equity_interval_ns
        next_equity = clock.timestamp_ns()
        start_equity = self._equity_point(clock.timestamp_ns()).equity
        batch = self.setup.batch
        self._call("on_start", self.strategy.on_start)
        data_done = False
        while True:
            stop = self._next_stop(min(next_equity, hard_stop), batch or data_done)
            if data_done and stop >= hard_stop:
                break
            status = engine.run_until(stop, self.notify_mask) if not data_done else k.STATUS_STOP
            if status == k.STATUS_LOCAL_NOTIFY:
                if not batch:
                    self._dispatch_row(engine.notify_row)  # the plain path the loop must equal
                    continue
                status = self._notify_loop(stop)
            if status == k.STATUS_FILLS:
                self._record(engine.drain())
                continue
            if status in (k.STATUS_LOCAL_NOTIFY, _PLAN_AGAIN):
                continue
            if status == k.STATUS_END:
                data_done = True
                continue
            # every row up to `stop` is done: now the things due at `stop`, in a fixed order
            scheduled = engine.next_scheduled_ns()
            if scheduled is not None and scheduled <= stop:
                self._record(engine.advance_time(stop))
            clock.advance_to(max(stop, clock.timestamp_ns()))
            venue.process_due(stop)
            if stop >= next_equity:
                self.equity.append(self._equity_point(stop))
                next_equity = stop + interval
        self._call("on_stop", self.strategy.on_stop)
        self.equity.append(self._equity_point(clock.timestamp_ns()))
        return BacktestResult(
            fills=list(venue.exchange_fills),
            orders=[o.final_snapshot() for o in engine.orders.values()] + self.refused,
            equity=self.equity,
            funding=[
                (ts, symbol, amount) for ts, account, symbol, amount in engine.funding_payments if account == ACCOUNT
            ],
            mid_at_send=venue.mid_at_send,
            start_equity=start_equity,
            final_balances=self._final_balances(),
            rows=len(rows),
            callbacks=self.callbacks,
            commands=venue.commands_sent,
            liquidations=engine.liquidations,
            book_gaps=dict(self.setup.table.gaps),
            wall_seconds=time.perf_counter() - started,
        )

    def _next_stop(self, stop: int, batch: bool) -> int:
        """The first moment at or before `stop` something besides market data is due (unbatched: or the
        next row's time)."""
        for due in (self.venue.next_due_ns(), self.clock.next_timer_ns(), self.engine.next_scheduled_ns()):
            if due is not None and due < stop:
                stop = due
        return stop if batch else min(stop, self._next_row_ns())

    def _next_row_ns(self) -> int:
        """The time of the next row either cursor of the kernel will process (unbatched runs)."""
        rows, ctl = self.setup.table.rows, self.engine.state.ctl
        times = [_FOREVER]
        if ctl[k.CTL_EXCHANGE_CURSOR] < len(rows):
            times.append(int(rows[ctl[k.CTL_EXCHANGE_CURSOR], k.COL_TS_EXCH]))
        if ctl[k.CTL_LOCAL_CURSOR] < len(rows):
            times.append(int(rows[ctl[k.CTL_LOCAL_CURSOR], k.COL_TS_LOCAL]))
        return min(times)

    def _record(self, events: list[EngineEvent]) -> None:
        self.venue.on_engine_events(events)  # the venue keeps every fill (`exchange_fills`)

    # ---- valuation ---------------------------------------------------------------------------------
    def _price_in_quote(self, asset: str) -> Decimal | None:
        if asset == QUOTE:
            return Decimal(1)
        for market in (Market.SPOT, Market.FUTURES):
            if self.engine.has_instrument(market, f"{asset}{QUOTE}"):
                price = self.engine.last_price(market, f"{asset}{QUOTE}")
                if price is not None:
                    return price
        return None

    def _equity_point(self, ts: int) -> EquityPoint:
        account = self.engine.accounts[ACCOUNT]
        equity = Decimal(0)
        exposure = Decimal(0)
        for asset in account.spot.assets():
            amount = account.spot.free(asset) + account.spot.locked(asset)
            price = self._price_in_quote(asset)
            if price is not None:
                equity += amount * price
                if asset != QUOTE:
                    exposure += abs(amount * price)
        futures = account.futures
        for asset in futures.assets():
            equity += futures.wallet(asset)
        for position in futures.positions.values():
            if position.quantity != 0:
                equity += futures.unrealized_pnl(position)
                exposure += futures.notional(position)
        return EquityPoint(ts, float(equity), float(exposure))

    def _final_balances(self) -> dict[str, Decimal]:
        account = self.engine.accounts[ACCOUNT]
        balances = {f"spot:{a}": account.spot.free(a) + account.spot.locked(a) for a in account.spot.assets()}
        balances.update({f"futures:{a}": account.futures.wallet(a) for a in account.futures.assets()})
        for symbol, position in sorted(account.futures.positions.items()):
            if position.quantity != 0:
                balances[f"position:{symbol}"] = position.quantity
        return balances


def run_backtest(setup: BacktestSetup) -> BacktestResult:
    return Backtest(setup).run()
