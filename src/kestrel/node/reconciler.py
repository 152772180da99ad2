"""The node's reconciler (R-EX-5) on the Binance venue: at start, every `execution.reconcile_interval_s`
and on alert, the ledger's unfinished orders, positions and missing fills against the exchange, and
every correction applied (see `kestrel.execution.reconcile_apply`).

- At start (crash recovery is this path) nothing trades yet: the corrections are applied at once.
- While trading, the ledger legitimately lags the exchange by the events in flight; a divergence is
  applied only when a second look, `confirm_s` later, still shows it. Orders whose submission the
  venue is still resolving (SUBMITTED, UNKNOWN in its view) are left to it.
- Alerts: a user-stream reconnect, an order outcome the venue found unknown, a submission resolved as
  never placed, or a failed venue task — each asks for a reconcile at the next turn of the loop.
- A correction that had to wait (an order whose request could still reach the exchange) schedules
  the next reconcile for when it can be decided.
"""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal

from kestrel.binance.venue import BinanceVenue
from kestrel.core.clock import Clock
from kestrel.core.enums import Market, OrderStatus, OrderType, Side
from kestrel.core.identifiers import ClientOrderId, is_own_client_order_id
from kestrel.core.logs import get_logger
from kestrel.core.orders import Fill, Order
from kestrel.core.venue import OrderRequest, OrderSnapshot
from kestrel.execution.guard import GuardedVenue
from kestrel.execution.reconcile import (
    Correction,
    Fix,
    OrderReport,
    OrphanPolicy,
    PositionReport,
    ReconcileReport,
    reconcile,
    reconcile_positions,
)
from kestrel.execution.reconcile_apply import (
    AppliedCorrection,
    Outcome,
    advance_intents,
    apply_corrections,
    recover_missing_fills,
)
from kestrel.storage.ledger import Ledger

log = get_logger(__name__)
NANOS_PER_SECOND = 1_000_000_000


def order_report(snapshot: OrderSnapshot) -> OrderReport:
    return OrderReport(
        snapshot.market, snapshot.symbol, snapshot.client_order_id, snapshot.order_id, snapshot.side, snapshot.status,
        snapshot.quantity, snapshot.filled_quantity, snapshot.average_price, snapshot.ts_updated,
        order_type=snapshot.order_type, price=snapshot.price, time_in_force=snapshot.time_in_force,
        reduce_only=snapshot.reduce_only, ts_created=snapshot.ts_created,
    )  # fmt: skip


class _Exchange:
    """The exchange side of applying corrections: trade lists by REST, commands through the guard
    (so a cancel or a closing order is in the ledger like any other)."""

    def __init__(self, binance: BinanceVenue, guard: GuardedVenue) -> None:
        self.binance = binance
        self.guard = guard

    async def order_fills(self, market: Market, symbol: str, venue_order_id: int, client_order_id: str) -> list[Fill]:
        return await self.binance.rest[market].order_fills(symbol, venue_order_id, ClientOrderId(client_order_id))

    def cancel_order(self, market: Market, symbol: str, client_order_id: str) -> None:
        self.guard.cancel_order(market, symbol, ClientOrderId(client_order_id))

    def close_position(self, market: Market, symbol: str, quantity: Decimal) -> None:
        side = Side.SELL if quantity > 0 else Side.BUY
        request = OrderRequest(market, symbol, side, OrderType.MARKET, abs(quantity), reduce_only=True)
        self.guard.submit_order(request, intent_id=f"reconcile-close-{symbol}")


class NodeReconciler:
    def __init__(
        self,
        ledger: Ledger,
        binance: BinanceVenue,
        guard: GuardedVenue,
        clock: Clock,
        policy: OrphanPolicy,
        interval_s: float,
        confirm_s: float = 1.0,
        max_adopt_notional_usdt: Decimal | None = None,
    ) -> None:
        self.ledger = ledger
        self.binance = binance
        self.clock = clock
        self.policy = policy
        self.interval_ns = int(interval_s * NANOS_PER_SECOND)
        self.confirm_s = confirm_s
        self.max_adopt_notional_usdt = max_adopt_notional_usdt
        self.exchange = _Exchange(binance, guard)
        self.never_placed_after_ns = int(binance.settings.unknown_deadline_s * NANOS_PER_SECOND)
        self.reports: list[ReconcileReport] = []
        self.applied: list[AppliedCorrection] = []
        self.runs = 0
        self.alerts = 0
        self._next_ns = 0
        self._last_run_ns = 0
        self._alert_marks = self._marks()
        self._task: asyncio.Task[None] | None = None

    # ---- one pass ---------------------------------------------------------------------------------
    async def snapshot_report(self, settle_in_flight: bool) -> ReconcileReport:
        """The corrections the exchange asks for now (none applied)."""
        unfinished = self.ledger.unfinished_orders()
        in_flight = [o.client_order_id for o in unfinished if settle_in_flight and self._in_flight(o)]
        unfinished = [o for o in unfinished if o.client_order_id not in in_flight]
        foreign = [o.client_order_id for o in unfinished if self._foreign(o)]
        snapshot = await self.binance.reconcile_snapshot([(o.market, o.symbol, o.client_order_id) for o in unfinished])
        return reconcile(
            unfinished, self.ledger.positions(), [order_report(s) for s in snapshot.queried_orders],
            [order_report(s) for s in snapshot.open_orders],
            [PositionReport(p.market, p.symbol, p.quantity, p.entry_price) for p in snapshot.positions],
            self.policy, snapshot.ts, self.max_adopt_notional_usdt, in_flight=in_flight, foreign=foreign,
        )  # fmt: skip

    async def run_once(self, *, at_start: bool) -> ReconcileReport:
        """Compare, apply (confirmed twice while trading), recover missing fills; returns the report."""
        started = self.clock.timestamp_ns()
        self.runs += 1
        report = await self.snapshot_report(settle_in_flight=not at_start)
        if not at_start and not report.clean:
            await asyncio.sleep(self.confirm_s)  # events in flight settle; what remains is real
            first = {(c.fix, c.subject) for c in report.corrections}
            second = await self.snapshot_report(settle_in_flight=True)
            report = ReconcileReport(tuple(c for c in second.corrections if (c.fix, c.subject) in first), second.ts)
        now = self.clock.timestamp_ns()
        orphans = tuple(c for c in report.corrections if c.fix in (Fix.ADOPT_POSITION, Fix.CLOSE_POSITION))
        others = tuple(c for c in report.corrections if c not in orphans)
        applied = await self._apply(others, now)
        since = 0 if at_start else max(0, self._last_run_ns - self.interval_ns)
        recovered = await recover_missing_fills(self.ledger, self.exchange, since)
        if orphans:  # with the orders and fills settled, our own fills may explain a "foreign" position
            keys = {(c.market, c.symbol) for c in orphans}
            positions = reconcile_positions(
                [p for p in self.ledger.positions() if (p.market, p.symbol) in keys],
                [c.position for c in orphans if c.position is not None], self.policy, self.max_adopt_notional_usdt,
                explained=self.ledger.fill_positions(),
            )  # fmt: skip
            applied += await self._apply(tuple(positions), now)
            report = ReconcileReport(others + tuple(positions), report.ts)
        intents = advance_intents(self.ledger, now)
        deferred = [a for a in applied if a.outcome == Outcome.DEFERRED]
        self.ledger.audit(
            "reconcile.run",
            {"at_start": at_start, "corrections": len(report.corrections), "deferred": len(deferred),
             "failed": sum(a.outcome == Outcome.FAILED for a in applied), "fills_recovered": recovered,
             "intent_steps": len(intents)},
            now,
        )  # fmt: skip
        self.reports.append(report)
        self.applied.extend(applied)
        self._last_run_ns = started
        self._next_ns = now + self.interval_ns
        if deferred or any(a.outcome == Outcome.FAILED for a in applied):
            self._next_ns = min(self._next_ns, now + self.never_placed_after_ns + NANOS_PER_SECOND)
        log.info("reconciled", corrections=len(report.corrections), deferred=len(deferred), fills=recovered)
        return report

    async def _apply(self, corrections: tuple[Correction, ...], now: int) -> list[AppliedCorrection]:
        report = ReconcileReport(corrections, now)
        return await apply_corrections(
            report, self.ledger, self.exchange, now_ns=now, never_placed_after_ns=self.never_placed_after_ns
        )

    # ---- scheduling (called from the node's loop) -------------------------------------------------
    def poll(self, now_ns: int) -> None:
        """Start a reconcile when one is due or an alert was raised (one at a time)."""
        if self._task is not None and not self._task.done():
            return
        marks = self._marks()
        alert = marks != self._alert_marks
        if alert:
            self.alerts += 1
            self._alert_marks = marks
        if alert or now_ns >= self._next_ns:
            self._task = asyncio.get_running_loop().create_task(self._run_guarded(alert))

    async def _run_guarded(self, alert: bool) -> None:
        try:
            if alert:
                self.ledger.audit("reconcile.alert", {"marks": list(self._alert_marks)}, self.clock.timestamp_ns())
            await self.run_once(at_start=False)
        except Exception as error:  # the exchange or the ledger failed: try again at the next period
            log.error("reconcile failed", error=repr(error))
            self._next_ns = self.clock.timestamp_ns() + min(self.interval_ns, 10 * NANOS_PER_SECOND)

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _marks(self) -> tuple[int, int, int, int]:
        counters = self.binance.counters
        return (counters.resyncs, counters.unknown_outcomes, counters.never_placed, len(counters.task_errors))

    def _foreign(self, order: Order) -> bool:
        """Not sent by us: no id of ours and no SUBMITTED record before the exchange's report (the guard
        writes one before every request it sends)."""
        if is_own_client_order_id(order.client_order_id):
            return False
        history = self.ledger.order_history(order.client_order_id)
        return not history or history[0][0] != OrderStatus.SUBMITTED.value

    def _in_flight(self, order: Order) -> bool:
        tracked = self.binance.view.get((order.market, order.symbol, order.client_order_id))
        return tracked is not None and tracked.snapshot.status in (OrderStatus.SUBMITTED, OrderStatus.UNKNOWN)
