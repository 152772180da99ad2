"""The executor: carries out a `RoutePlan` through the `Venue` interface (R-EX-1, R-EX-2, R-EX-7).

Driven only by venue events and clock timers, never by sleeping, so a backtest under `SimClock` and a
live run under `LiveClock` take the same steps:

- the liquidity probe's start delay and each TWAP slice's jittered delay are clock timers (a slice due
  at once is sent at once, inside the call that decided it);
- a maker slice is a post-only limit at the near touch (futures GTX, spot LIMIT_MAKER); a timer fires
  after the bucket's maker wait: if the order is still working it is cancelled and, when the intent's
  fill ratio over the slices sent so far is below θ, the remainder the cancel confirms goes as a taker
  (market) order. A post-only order the venue refuses because it would take is treated as a maker wait
  that ended at once;
- client order ids derive from the intent id, the leg (``m2`` maker slice 2, ``t2`` its taker
  remainder, ``x`` an exit) and an attempt number, so a replayed decision sends the same ids and the
  exchange refuses the duplicates; executing an intent twice does nothing the second time;
- every order that traded gets its slippage, slip_bps = (VWAP − mid at send) / mid × 1e4 (R-EX-2),
  kept on its record and written to the ledger's audit trail when the venue has a ledger; maker
  outcomes, acknowledgement latencies and balance rejections feed `ExecutionStats`, whose degradation
  flags shape the next plans (R-EX-7).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from functools import partial

from kestrel.config.models import ExecutionConfig
from kestrel.core.clock import Clock, TimeEvent
from kestrel.core.enums import Market, OrderStatus, OrderType, Side, TimeInForce
from kestrel.core.errors import InvalidOrderError
from kestrel.core.identifiers import ClientOrderId, client_order_id
from kestrel.core.instrument import Instrument
from kestrel.core.logs import get_logger
from kestrel.core.orders import Fill, Intent
from kestrel.core.venue import BookView, ExecutionType, OrderRequest, OrderUpdate, Venue
from kestrel.execution.guard import GuardedVenue
from kestrel.execution.quality import ExecutionStats, slip_bps
from kestrel.execution.routing import RoutePlan, Slice, Style, needs_taker_fallback, plan_route
from kestrel.storage.ledger import Ledger, LedgerError

log = get_logger(__name__)
NANOS_PER_MILLISECOND = 1_000_000
ZERO = Decimal(0)
_INSUFFICIENT_BALANCE_CODES = frozenset({-2018, -2019, -2010})
LEDGER_FLUSH_TIMER = "exec:ledger-flush"
LEDGER_FLUSH_DELAY_NS = 1_000_000  # one loop turn of the node (its loop wakes every millisecond)


class Leg(StrEnum):
    MAKER = "m"
    TAKER = "t"
    EXIT = "x"


@dataclass
class OrderRecord:
    """One order the executor sent, with what it needs for slippage and the θ rule."""

    client_order_id: ClientOrderId
    intent_id: str
    slice_index: int
    leg: Leg
    side: Side
    quantity: Decimal
    ts_sent_ns: int
    mid_at_send: float | None
    price: Decimal | None = None
    filled: Decimal = ZERO
    notional: Decimal = ZERO
    status: OrderStatus = OrderStatus.SUBMITTED
    acknowledged: bool = False
    fallback_to_taker: bool = False  # decided when its maker wait ended; acted on when the cancel lands
    slip_bps: float | None = None

    @property
    def final(self) -> bool:
        return not self.status.is_open and self.status is not OrderStatus.SUBMITTED

    @property
    def vwap(self) -> Decimal | None:
        return self.notional / self.filled if self.filled else None


@dataclass
class IntentExecution:
    """The progress of one intent's plan."""

    intent: Intent
    plan: RoutePlan
    ts_start_ns: int
    orders: list[OrderRecord] = field(default_factory=list)
    slices_sent: int = 0
    done: bool = False
    cancelled: bool = False

    @property
    def filled(self) -> Decimal:
        return sum((order.filled for order in self.orders), ZERO)

    @property
    def notional(self) -> Decimal:
        return sum((order.notional for order in self.orders), ZERO)

    @property
    def average_price(self) -> Decimal | None:
        filled = self.filled
        return self.notional / filled if filled else None

    def requested_so_far(self) -> Decimal:
        return sum((piece.quantity for piece in self.plan.slices[: self.slices_sent]), ZERO)

    def order_for(self, leg: Leg, slice_index: int) -> OrderRecord | None:
        for order in self.orders:
            if order.leg is leg and order.slice_index == slice_index:
                return order
        return None


FillHandler = Callable[[IntentExecution, OrderRecord, Fill], None]
DoneHandler = Callable[[IntentExecution], None]


class Executor:
    """Carries out intents. Feed it every `OrderUpdate` of the venue with `on_order_update` (it
    answers whether the update was about one of its orders)."""

    def __init__(
        self,
        venue: Venue,
        clock: Clock,
        config: ExecutionConfig,
        instruments: Mapping[tuple[Market, str], Instrument],
        books: Mapping[tuple[Market, str], BookView],
        rng: random.Random,
        *,
        stats: ExecutionStats | None = None,
        ledger: Ledger | None = None,
        on_fill: FillHandler | None = None,
        on_done: DoneHandler | None = None,
    ) -> None:
        self.venue = venue
        self.clock = clock
        self.config = config
        self.instruments = instruments
        self.books = books
        self.rng = rng
        self.stats = stats or ExecutionStats()
        self.ledger = ledger if ledger is not None else (venue.ledger if isinstance(venue, GuardedVenue) else None)
        self.on_fill = on_fill
        self.on_done = on_done
        self.executions: dict[str, IntentExecution] = {}
        self._orders: dict[str, tuple[IntentExecution, OrderRecord]] = {}
        self.last_send_ns = 0  # clock time of the latest order handed to the venue (latency probes)
        self._pending_writes: list[Callable[[Ledger], object]] = []
        self._write_through = False  # set at shutdown: queued writes would never be flushed

    # ---- commands --------------------------------------------------------------------------------
    def execute(
        self, intent: Intent, spread_bps: float | None = None, mean_spread_bps_1h: float | None = None
    ) -> IntentExecution:
        """Plan and start an entry intent. The same intent id twice: the first execution, unchanged."""
        known = self.executions.get(intent.intent_id)
        if known is not None:
            return known
        now = self.clock.timestamp_ns()
        instrument = self.instruments[(intent.market, intent.symbol)]
        price = intent.price if intent.price is not None else self._touch(intent.market, intent.symbol, intent.side)
        if price is None:
            raise InvalidOrderError(f"{intent.symbol}: no price to plan the route of intent {intent.intent_id}")
        degradation = self.stats.degradation(
            now, self.config.degrade_maker_fill_ratio, self.config.degrade_routing_p95_ms,
            self.config.degrade_insufficient_balance_rate,
        )  # fmt: skip
        plan = plan_route(
            instrument, intent.quantity, price, self.config, self.rng, degradation, spread_bps, mean_spread_bps_1h
        )
        return self._start(intent, plan, now)

    def execute_exit(self, intent: Intent, attempt: int = 0) -> IntentExecution:
        """A reduce-only taker order for an exit (stop, partial take-profit, max holding time)."""
        key = f"{intent.intent_id}#{attempt}"
        known = self.executions.get(key)
        if known is not None:
            return known
        # exits are not re-planned or sliced: the quantity is what the position holds, now
        plan = RoutePlan(self.config.routing[0], (Slice(0, intent.quantity, 0, Style.TAKER, 0),), 0, ("exit",))
        execution = IntentExecution(intent, plan, self.clock.timestamp_ns())
        self.executions[key] = execution
        execution.slices_sent = 1
        self._send(execution, plan.slices[0], Leg.EXIT, OrderType.MARKET, attempt)
        return execution

    def _start(self, intent: Intent, plan: RoutePlan, now: int) -> IntentExecution:
        execution = IntentExecution(intent, plan, now)
        self.executions[intent.intent_id] = execution
        # deferred: each order row (written by the guard before its request) already names this intent,
        # so the intent's own row need not delay the first order; queued first, before any state change
        self._ledger_write(lambda ledger: ledger.record_intent(intent))
        if not plan.slices:
            self._finish(execution)
            return execution
        for piece in plan.slices:
            due = now + piece.delay_ms * NANOS_PER_MILLISECOND
            if piece.delay_ms == 0:
                self._send_slice(execution, piece)
            else:
                self.clock.set_timer(
                    f"exec:{intent.intent_id}:s{piece.index}", due, partial(self._slice_due, execution, piece)
                )
        return execution

    def _slice_due(self, execution: IntentExecution, piece: Slice, _event: TimeEvent) -> None:
        self._send_slice(execution, piece)

    def _send_slice(self, execution: IntentExecution, piece: Slice) -> None:
        execution.slices_sent = max(execution.slices_sent, piece.index + 1)
        intent = execution.intent
        if piece.style is Style.TAKER:
            self._send(execution, piece, Leg.TAKER, OrderType.MARKET)
            return
        price = self._touch(intent.market, intent.symbol, intent.side) or intent.price
        spot = intent.market is Market.SPOT
        record = self._send(
            execution, piece, Leg.MAKER, OrderType.LIMIT_MAKER if spot else OrderType.LIMIT, price=price,
            time_in_force=None if spot else TimeInForce.GTX,
        )  # fmt: skip
        if record is not None and not record.final:
            self.clock.set_timer(
                f"exec:{intent.intent_id}:w{piece.index}",
                self.clock.timestamp_ns() + piece.maker_wait_ms * NANOS_PER_MILLISECOND,
                partial(self._maker_wait_over, execution, record),
            )

    def _send(
        self,
        execution: IntentExecution,
        piece: Slice,
        leg: Leg,
        order_type: OrderType,
        attempt: int = 0,
        *,
        price: Decimal | None = None,
        time_in_force: TimeInForce | None = None,
        quantity: Decimal | None = None,
    ) -> OrderRecord | None:
        intent = execution.intent
        cid = client_order_id(intent.intent_id, f"{leg.value}{piece.index}", attempt)
        if cid in self._orders:
            return self._orders[cid][1]  # idempotent: this leg was already sent
        amount = quantity if quantity is not None else piece.quantity
        now = self.clock.timestamp_ns()
        book = self.books.get((intent.market, intent.symbol))
        record = OrderRecord(
            cid, intent.intent_id, piece.index, leg, intent.side, amount, now, book.mid if book is not None else None,
            price=price,
        )  # fmt: skip
        # registered before the call: a guard refusal comes back as an event inside submit_order
        self._orders[cid] = (execution, record)
        execution.orders.append(record)
        request = OrderRequest(
            intent.market, intent.symbol, intent.side, order_type, quantity=amount, price=price,
            time_in_force=time_in_force, client_order_id=cid, reduce_only=intent.reduce_only and intent.market
            is Market.FUTURES,
        )  # fmt: skip
        self.last_send_ns = now
        if isinstance(self.venue, GuardedVenue):
            self.venue.submit_order(request, intent_id=intent.intent_id)
        else:
            self.venue.submit_order(request)
        return record

    def _maker_wait_over(self, execution: IntentExecution, record: OrderRecord, _event: TimeEvent) -> None:
        if record.final:
            return
        record.fallback_to_taker = needs_taker_fallback(
            execution.filled, execution.requested_so_far(), self.config.maker_fill_ratio_min
        )
        intent = execution.intent
        self.venue.cancel_order(intent.market, intent.symbol, record.client_order_id)

    def cancel(self, intent_id: str) -> None:
        """Stop an intent: no further slice, no taker fallback, its working orders cancelled (their
        fills up to the cancel still arrive as events)."""
        execution = self.executions.get(intent_id)
        if execution is None or execution.done:
            return
        for piece in execution.plan.slices:
            self.clock.cancel_timer(f"exec:{intent_id}:s{piece.index}")
            self.clock.cancel_timer(f"exec:{intent_id}:w{piece.index}")
        execution.slices_sent = len(execution.plan.slices)  # the unsent slices are dropped
        intent = execution.intent
        for order in execution.orders:
            order.fallback_to_taker = False
            if not order.final:
                self.venue.cancel_order(intent.market, intent.symbol, order.client_order_id)
        execution.cancelled = True
        self._check_done(execution)

    # ---- venue events --------------------------------------------------------------------------------
    def on_order_update(self, update: OrderUpdate) -> bool:
        entry = self._orders.get(update.order.client_order_id)
        if entry is None:
            return False
        execution, record = entry
        now = self.clock.timestamp_ns()
        if update.execution_type is ExecutionType.NEW and not record.acknowledged:
            record.acknowledged = True
            self.stats.record_routing_latency(now, (update.ts_init - record.ts_sent_ns) / NANOS_PER_MILLISECOND)
        fill = update.fill
        if fill is not None:
            record.filled += fill.quantity
            record.notional += fill.quantity * fill.price
            if self.on_fill is not None:
                self.on_fill(execution, record, fill)
        was_final = record.final
        if update.execution_type is ExecutionType.REJECTED and record.status is OrderStatus.SUBMITTED:
            record.status = OrderStatus.REJECTED
            balance = update.code in _INSUFFICIENT_BALANCE_CODES or "insufficient" in (update.reason or "").lower()
            self.stats.record_order_result(now, balance)
        elif update.execution_type is not ExecutionType.REJECTED or not update.order.status.is_open:
            # a failed cancel repeats the last known state: open means the order still works
            record.status = update.order.status
        if record.final and not was_final:
            self._order_finished(execution, record, update)
        return True

    def _order_finished(self, execution: IntentExecution, record: OrderRecord, update: OrderUpdate) -> None:
        now = self.clock.timestamp_ns()
        if record.status is not OrderStatus.REJECTED:
            self.stats.record_order_result(now, False)
        if record.leg is Leg.MAKER:
            self.clock.cancel_timer(f"exec:{execution.intent.intent_id}:w{record.slice_index}")
            self.stats.record_maker_attempt(now, record.filled >= record.quantity)
            if record.filled < record.quantity and not record.fallback_to_taker and record.status in (
                OrderStatus.EXPIRED, OrderStatus.REJECTED,
            ):  # fmt: skip
                # the post-only order would have taken (or was refused): its maker wait ended at once
                record.fallback_to_taker = needs_taker_fallback(
                    execution.filled, execution.requested_so_far(), self.config.maker_fill_ratio_min
                )
            if record.fallback_to_taker and not execution.cancelled:
                self._send_remainder(execution, record)
        if record.filled > 0 and record.mid_at_send:
            vwap = record.vwap
            assert vwap is not None
            record.slip_bps = slip_bps(float(vwap), record.mid_at_send)
            self._record_slip(execution, record, update.ts_init)
        self._check_done(execution)

    def _send_remainder(self, execution: IntentExecution, record: OrderRecord) -> None:
        remainder = record.quantity - record.filled
        intent = execution.intent
        instrument = self.instruments[(intent.market, intent.symbol)]
        price = self._touch(intent.market, intent.symbol, intent.side.opposite()) or record.price or intent.price
        try:
            if price is not None:
                instrument.validate(price, remainder, OrderType.MARKET)
        except InvalidOrderError as error:
            log.info("taker remainder below the exchange minimums: not sent", intent=intent.intent_id,
                     remainder=str(remainder), error=str(error))  # fmt: skip
            return
        piece = execution.plan.slices[record.slice_index]
        self._send(execution, piece, Leg.TAKER, OrderType.MARKET, quantity=remainder)

    def _check_done(self, execution: IntentExecution) -> None:
        if execution.done or execution.slices_sent < len(execution.plan.slices):
            return
        if not all(order.final for order in execution.orders):
            return
        execution.done = True
        self._finish(execution)

    def _finish(self, execution: IntentExecution) -> None:
        execution.done = True
        intent = execution.intent
        if self.ledger is not None and not intent.reduce_only:
            state = "ACTIVE" if execution.filled > 0 else "CLOSED"
            now = self.clock.timestamp_ns()
            self._ledger_write(lambda ledger: ledger.set_intent_state(intent.intent_id, state, now))
        if self.on_done is not None:
            self.on_done(execution)

    # ---- helpers ---------------------------------------------------------------------------------------
    def _touch(self, market: Market, symbol: str, side: Side) -> Decimal | None:
        """The near touch for `side`: the best bid for a buy, the best ask for a sell."""
        book = self.books.get((market, symbol))
        if book is None:
            return None
        return book.best_bid_price if side is Side.BUY else book.best_ask_price

    def _record_slip(self, execution: IntentExecution, record: OrderRecord, ts: int) -> None:
        if self.ledger is None:
            return
        detail = {
            "intent_id": record.intent_id, "client_order_id": record.client_order_id, "leg": record.leg.value,
            "slip_bps": record.slip_bps, "vwap": str(record.vwap), "mid_at_send": record.mid_at_send,
            "filled": str(record.filled),
        }  # fmt: skip
        subject = execution.intent.symbol
        self._ledger_write(lambda ledger: ledger.audit("execution.slip", detail, ts, subject=subject))

    def _ledger_write(self, write: Callable[[Ledger], object]) -> None:
        """Queue a ledger write for a clock tick later (see `defer_ledger_write`)."""
        self.defer_ledger_write(write)

    def defer_ledger_write(self, write: Callable[[Ledger], object]) -> None:
        """Run `write` against the ledger one clock tick from now, in the order queued.

        Orders themselves are written before their request leaves (by the guard). The rows written
        here — intents, their states, slippage audits, signals — come after: a live venue writes
        its requests to the socket only once the current callback has returned to the event loop, so
        a durable write made in the same callback would delay the order by the write's fsync.
        """
        if self.ledger is None:
            return
        self._pending_writes.append(write)
        if self._write_through:  # stopping: the clock may not tick again, nothing may wait for it
            self.flush_ledger()
        elif len(self._pending_writes) == 1:
            self.clock.set_timer(LEDGER_FLUSH_TIMER, self.clock.timestamp_ns() + LEDGER_FLUSH_DELAY_NS, self._flush_due)

    def _flush_due(self, _event: TimeEvent) -> None:
        self.flush_ledger()

    def flush_ledger(self, final: bool = False) -> None:
        """Write every queued ledger row now. `final` (at shutdown): from now on every row is written
        when it comes, so rows of events that still arrive while the venue drains are not lost."""
        self._write_through = self._write_through or final
        pending, self._pending_writes = self._pending_writes, []
        self.clock.cancel_timer(LEDGER_FLUSH_TIMER)
        if self.ledger is None:
            return
        for write in pending:
            try:
                write(self.ledger)
            except LedgerError as error:  # trading state keeps flowing; the reconciler repairs the ledger
                log.error("ledger write failed", error=str(error))

    def timer_names(self, intent_id: str) -> list[str]:
        """The clock timers this executor may hold for an intent (for tests and shutdown)."""
        execution = self.executions.get(intent_id)
        if execution is None:
            return []
        return [f"exec:{intent_id}:{kind}{piece.index}" for piece in execution.plan.slices for kind in ("s", "w")]
