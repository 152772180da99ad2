"""Applying the reconciler's corrections (R-EX-5) to the ledger, and to the exchange where the orphan
policy says cancel or close.

Each correction is applied idempotently (applying the same report twice leaves the ledger as once:
orders are overwritten with the exchange's state, fills are unique per trade, positions are set) and
is written to the ledger's audit trail as `reconcile.fix`, with what was done: that trail is the
report of every correction.

Fills the ledger misses (the node died between an order's update and its fill's write, or while the
exchange filled a resting order) are read from the exchange's trade list of the order and recorded;
the ledger's unique (market, symbol, trade id, order) key makes a fill seen twice count once.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from kestrel.core.enums import Market, OrderStatus
from kestrel.core.identifiers import ClientOrderId, IntentId, VenueOrderId
from kestrel.core.logs import get_logger
from kestrel.core.orders import Fill, Order, Position
from kestrel.execution.reconcile import (
    Correction,
    Fix,
    IntentState,
    OrderReport,
    ReconcileReport,
    check_intent_transition,
)
from kestrel.storage.ledger import Ledger

log = get_logger(__name__)
ZERO = Decimal(0)
NEVER_PLACED_REASON = "never placed (unknown to the exchange at reconciliation)"


class ReconcileExchange(Protocol):
    """What applying corrections needs from the exchange side."""

    async def order_fills(
        self, market: Market, symbol: str, venue_order_id: int, client_order_id: str
    ) -> list[Fill]: ...

    def cancel_order(self, market: Market, symbol: str, client_order_id: str) -> None: ...

    def close_position(self, market: Market, symbol: str, quantity: Decimal) -> None: ...


class Outcome:
    APPLIED = "applied"
    DEFERRED = "deferred"  # not yet safe to decide (e.g. a request that may still reach the exchange)
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class AppliedCorrection:
    correction: Correction
    outcome: str
    note: str = ""
    fills_recovered: int = 0

    def audit_detail(self) -> dict[str, Any]:
        correction = self.correction
        detail: dict[str, Any] = {
            "fix": correction.fix.value, "market": correction.market.value, "symbol": correction.symbol,
            "detail": correction.detail, "outcome": self.outcome, "fills_recovered": self.fills_recovered,
        }  # fmt: skip
        if self.note:
            detail["note"] = self.note
        if correction.order is not None:
            order = correction.order
            detail["exchange_order"] = {
                "status": order.status.value,
                "filled": str(order.filled_quantity),
                "order_id": order.venue_order_id,
            }
        if correction.position is not None:
            detail["exchange_position"] = {
                "quantity": str(correction.position.quantity),
                "entry_price": str(correction.position.entry_price),
            }
        return detail


async def apply_corrections(
    report: ReconcileReport,
    ledger: Ledger,
    exchange: ReconcileExchange,
    *,
    now_ns: int,
    never_placed_after_ns: int,
) -> list[AppliedCorrection]:
    """Apply every correction of `report`; each is audited. An order the exchange does not know is
    declared never placed only once its request can no longer be accepted (`never_placed_after_ns`
    after its last ledger write, the venue's own deadline); before that it is DEFERRED."""
    results: list[AppliedCorrection] = []
    for correction in report.corrections:
        try:
            result = await _apply(correction, ledger, exchange, now_ns, never_placed_after_ns)
        except Exception as error:  # one failed fix must not stop the others; the next reconcile retries
            log.exception("reconcile correction failed", fix=correction.fix.value, subject=correction.subject)
            result = AppliedCorrection(correction, Outcome.FAILED, f"{error.__class__.__name__}: {error}")
        ledger.audit("reconcile.fix", result.audit_detail(), now_ns, subject=correction.subject)
        results.append(result)
    return results


async def recover_missing_fills(ledger: Ledger, exchange: ReconcileExchange, since_ns: int = 0) -> int:
    """Fills the ledger misses for orders it knows (filled quantity above the sum of its fills),
    read from the exchange; returns how many were recorded (each also audited)."""
    recovered = 0
    for order, _ in ledger.fill_deficits(since_ns):
        if order.venue_order_id is None:
            continue
        count = await _recover_fills(ledger, exchange, order.market, order.symbol, order.venue_order_id,
                                     order.client_order_id, order.filled_quantity)  # fmt: skip
        if count:
            ledger.audit(
                "reconcile.fills", {"recovered": count, "filled": str(order.filled_quantity)},
                order.ts_last, subject=order.client_order_id,
            )  # fmt: skip
        recovered += count
    return recovered


async def _apply(
    correction: Correction, ledger: Ledger, exchange: ReconcileExchange, now_ns: int, never_placed_after_ns: int
) -> AppliedCorrection:
    fix = correction.fix
    if fix is Fix.UPDATE_ORDER:
        assert correction.order is not None
        return await _take_exchange_order(correction, correction.order, ledger, exchange, "")
    if fix is Fix.ORDER_MISSING:
        stored = ledger.get_order(correction.subject)
        if stored is None or stored.status.is_terminal:
            return AppliedCorrection(correction, Outcome.APPLIED, "already settled")
        if now_ns - stored.ts_last < never_placed_after_ns:
            return AppliedCorrection(correction, Outcome.DEFERRED, "its request could still be accepted")
        ledger.update_order(
            _with(stored, status=OrderStatus.REJECTED, reject_reason=NEVER_PLACED_REASON, ts_last=now_ns),
            reason=NEVER_PLACED_REASON,
        )
        return AppliedCorrection(correction, Outcome.APPLIED, "marked REJECTED (never placed)")
    if fix is Fix.ADOPT_ORDER:
        assert correction.order is not None
        return await _take_exchange_order(correction, correction.order, ledger, exchange, "adopted")
    if fix is Fix.CANCEL_ORDER:
        assert correction.order is not None
        # recorded first, so its fills so far are known and its cancellation is tracked like any order's
        recorded = await _take_exchange_order(correction, correction.order, ledger, exchange, "orphan")
        exchange.cancel_order(correction.market, correction.symbol, correction.subject)
        return AppliedCorrection(correction, Outcome.APPLIED, "recorded, cancel sent", recorded.fills_recovered)
    assert correction.position is not None
    _set_position(ledger, correction.position.market, correction.position.symbol, correction.position.quantity,
                  correction.position.entry_price, now_ns)  # fmt: skip
    if fix is Fix.CLOSE_POSITION:
        exchange.close_position(correction.market, correction.symbol, correction.position.quantity)
        return AppliedCorrection(correction, Outcome.APPLIED, "recorded, reduce-only market order sent")
    return AppliedCorrection(correction, Outcome.APPLIED, "position set to the exchange's")


async def _take_exchange_order(
    correction: Correction, report: OrderReport, ledger: Ledger, exchange: ReconcileExchange, origin: str
) -> AppliedCorrection:
    """The ledger's order becomes the exchange's (recorded if unknown), then its missing fills."""
    stored = ledger.get_order(report.client_order_id)
    if stored is None:
        ledger.record_order(_order_from_report(report, f"{origin or 'reconciled'}-{report.client_order_id}"))
        note = "recorded"
    elif _ahead(stored, report):
        note = "the ledger is already ahead of this report (a later event arrived meanwhile): kept"
    else:
        ledger.update_order(
            _with(
                stored, status=report.status, filled_quantity=report.filled_quantity,
                average_price=report.average_price if report.filled_quantity > 0 else stored.average_price,
                venue_order_id=VenueOrderId(report.venue_order_id) if report.venue_order_id else stored.venue_order_id,
                ts_last=max(stored.ts_last, report.ts_last),
            ),
            reason="reconcile",
        )  # fmt: skip
        note = "updated"
    fills = 0
    if report.filled_quantity > 0 and report.venue_order_id:
        fills = await _recover_fills(ledger, exchange, report.market, report.symbol, report.venue_order_id,
                                     report.client_order_id, report.filled_quantity)  # fmt: skip
    return AppliedCorrection(correction, Outcome.APPLIED, note, fills)


async def _recover_fills(
    ledger: Ledger,
    exchange: ReconcileExchange,
    market: Market,
    symbol: str,
    venue_order_id: int,
    client_order_id: str,
    filled: Decimal,
) -> int:
    have = sum((fill.quantity for fill in ledger.fills(client_order_id)), ZERO)
    if have >= filled:
        return 0
    fills = await exchange.order_fills(market, symbol, venue_order_id, client_order_id)
    return sum(ledger.record_fill(fill) for fill in fills)


def _set_position(ledger: Ledger, market: Market, symbol: str, quantity: Decimal, entry: Decimal, now_ns: int) -> None:
    current = next((p for p in ledger.positions() if p.market is market and p.symbol == symbol), None)
    if current is None:
        ledger.save_position(Position(market, symbol, quantity, entry, ts_opened=now_ns, ts_last=now_ns))
        return
    ledger.save_position(
        Position(market, symbol, quantity, entry if quantity != 0 else ZERO, current.realized_pnl, current.fees,
                 current.funding, current.ts_opened or now_ns, now_ns)
    )  # fmt: skip


def _order_from_report(report: OrderReport, intent_id: str) -> Order:
    return Order.restore(
        client_order_id=ClientOrderId(report.client_order_id), intent_id=IntentId(intent_id[:64]),
        market=report.market, symbol=report.symbol, side=report.side, order_type=report.order_type,
        quantity=report.quantity, ts_init=report.ts_created or report.ts_last, price=report.price,
        time_in_force=report.time_in_force, reduce_only=report.reduce_only, status=report.status,
        venue_order_id=VenueOrderId(report.venue_order_id) if report.venue_order_id else None,
        filled_quantity=report.filled_quantity, average_price=report.average_price, ts_last=report.ts_last,
    )  # fmt: skip


def _ahead(stored: Order, report: OrderReport) -> bool:
    """The ledger already has a later state than the report (a stream event overtook the snapshot).
    A REJECTED order the exchange lists is not ahead: the ledger was wrong (decided "never placed")."""
    if stored.filled_quantity > report.filled_quantity:
        return True
    finished = stored.status.is_terminal and stored.status is not OrderStatus.REJECTED
    return finished and not report.status.is_terminal


def _with(order: Order, **changes: Any) -> Order:
    fields = {name: getattr(order, name) for name in order.__dataclass_fields__}
    fields.update(changes)
    return Order.restore(**fields)


def advance_intents(ledger: Ledger, now_ns: int) -> list[tuple[str, IntentState, IntentState]]:
    """Move every unfinished intent along PENDING_ENTRY → ACTIVE → PENDING_CLOSING → CLOSED by what
    its orders and its symbol's position (both settled by the corrections) now say; each step is
    audited as `reconcile.intent`. Returns the steps taken.

    - PENDING_ENTRY: an order filled ⇒ ACTIVE; every order finished without a fill ⇒ CLOSED;
    - ACTIVE / PENDING_CLOSING: every order finished and the position flat ⇒ CLOSED; PENDING_CLOSING
      with every order finished and the position still open ⇒ ACTIVE (the close failed)."""
    steps: list[tuple[str, IntentState, IntentState]] = []
    positions = {(p.market, p.symbol): p.quantity for p in ledger.positions()}
    for intent_id, state_text in sorted(ledger.intent_states().items()):
        state = IntentState(state_text)
        if state is IntentState.CLOSED:
            continue
        intent = ledger.get_intent(intent_id)
        orders = ledger.orders(intent_id)
        if intent is None or not orders:
            continue
        finished = all(order.status.is_terminal for order in orders)
        filled = any(order.filled_quantity > 0 for order in orders)
        flat = positions.get((intent.market, intent.symbol), ZERO) == 0
        target: IntentState = state
        if state is IntentState.PENDING_ENTRY:
            target = IntentState.ACTIVE if filled else IntentState.CLOSED if finished else state
        elif finished:
            target = IntentState.CLOSED if flat else IntentState.ACTIVE
        if target is state:
            continue
        check_intent_transition(state, target)
        ledger.set_intent_state(intent_id, target.value, now_ns)
        ledger.audit("reconcile.intent", {"from": state.value, "to": target.value}, now_ns, subject=intent_id)
        steps.append((intent_id, state, target))
    return steps
