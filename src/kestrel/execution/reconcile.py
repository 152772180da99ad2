"""Reconciliation (R-EX-5): the ledger against what the exchange says, and the fixes to make.

Runs at start-up (crash recovery is simply this path), every `execution.reconcile_interval_s` and on
alert. Inputs are normalised status reports (any venue adapter produces them); the output is a list of
`Correction`s, applied by `kestrel.execution.reconcile_apply` (run by the node's `NodeReconciler`) and
written to the ledger's audit trail as the report of every fix (docs/reconciliation.md).

Invariants after the corrections are applied:
- every order the ledger thinks unfinished has the exchange's status (or is known to be gone);
- every open order on the exchange is in the ledger (adopted) or cancelled (policy);
- every position's quantity equals the exchange's; one the ledger did not know is adopted when it is
  safe (RECLAIM_IF_SAFE: it is ours by client-id prefix, or it is within the risk budget) or closed
  (CONSERVATIVE, or unsafe).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from kestrel.core.enums import Market, OrderStatus, OrderType, Side, TimeInForce
from kestrel.core.identifiers import is_own_client_order_id
from kestrel.core.orders import Order, Position


class IntentState(StrEnum):
    PENDING_ENTRY = "PENDING_ENTRY"
    ACTIVE = "ACTIVE"
    PENDING_CLOSING = "PENDING_CLOSING"
    CLOSED = "CLOSED"


_INTENT_TRANSITIONS = {
    IntentState.PENDING_ENTRY: {IntentState.ACTIVE, IntentState.CLOSED},  # CLOSED: entry never filled
    IntentState.ACTIVE: {IntentState.PENDING_CLOSING, IntentState.CLOSED},
    IntentState.PENDING_CLOSING: {IntentState.CLOSED, IntentState.ACTIVE},  # ACTIVE: a close failed
    IntentState.CLOSED: set(),
}


def check_intent_transition(current: IntentState, target: IntentState) -> None:
    if target is current:
        return
    if target not in _INTENT_TRANSITIONS[current]:
        raise ValueError(f"intent cannot go {current.value} -> {target.value}")


class OrphanPolicy(StrEnum):
    RECLAIM_IF_SAFE = "RECLAIM_IF_SAFE"
    CONSERVATIVE = "CONSERVATIVE"


@dataclass(frozen=True, slots=True)
class OrderReport:
    """The exchange's view of one order."""

    market: Market
    symbol: str
    client_order_id: str
    venue_order_id: int
    side: Side
    status: OrderStatus
    quantity: Decimal
    filled_quantity: Decimal
    average_price: Decimal
    ts_last: int
    order_type: OrderType = OrderType.LIMIT
    price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    reduce_only: bool = False
    ts_created: int = 0


@dataclass(frozen=True, slots=True)
class PositionReport:
    """The exchange's view of one position (signed quantity; spot: the base balance we manage)."""

    market: Market
    symbol: str
    quantity: Decimal
    entry_price: Decimal


class Fix(StrEnum):
    UPDATE_ORDER = "update_order"  # ledger order takes the exchange's status / fills
    ORDER_MISSING = "order_missing"  # ledger thinks it unfinished, the exchange does not know it
    ADOPT_ORDER = "adopt_order"  # open on the exchange, ours, unknown to the ledger: record it
    CANCEL_ORDER = "cancel_order"  # open on the exchange, not ours (or policy): cancel it
    SET_POSITION = "set_position"  # quantities differ: the exchange is the truth
    ADOPT_POSITION = "adopt_position"
    CLOSE_POSITION = "close_position"


@dataclass(frozen=True, slots=True)
class Correction:
    fix: Fix
    market: Market
    symbol: str
    subject: str  # client order id, or the symbol for positions
    detail: str
    order: OrderReport | None = None
    position: PositionReport | None = None


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    corrections: tuple[Correction, ...]
    ts: int

    @property
    def clean(self) -> bool:
        return not self.corrections


def reconcile(
    ledger_unfinished: Sequence[Order],
    ledger_positions: Iterable[Position],
    exchange_orders: Sequence[OrderReport],
    exchange_open_orders: Sequence[OrderReport],
    exchange_positions: Sequence[PositionReport],
    policy: OrphanPolicy,
    ts: int,
    max_adopt_notional_usdt: Decimal | None = None,
    in_flight: Collection[str] = (),
    foreign: Collection[str] = (),
) -> ReconcileReport:
    """Compare and list corrections. `exchange_orders` are the exchange's answers for the ledger's
    unfinished orders (queried by client id); `exchange_open_orders` is its full open-order list;
    `in_flight` are client ids the ledger has whose submission is still being answered (not orphans);
    `foreign` are ledger orders we did not send (recorded from the user stream: a manual order on the
    account), cancelled while open, as any order not ours is."""
    corrections: list[Correction] = []
    by_client = {report.client_order_id: report for report in exchange_orders}
    by_client.update({report.client_order_id: report for report in exchange_open_orders})
    known = set(in_flight)
    for order in ledger_unfinished:
        known.add(order.client_order_id)
        report = by_client.get(order.client_order_id)
        if report is None:
            corrections.append(
                Correction(
                    Fix.ORDER_MISSING,
                    order.market,
                    order.symbol,
                    order.client_order_id,
                    f"ledger {order.status.value}, unknown to the exchange: never placed",
                )
            )
        elif order.client_order_id in foreign and report.status.is_open:
            corrections.append(
                Correction(
                    Fix.CANCEL_ORDER,
                    order.market,
                    order.symbol,
                    order.client_order_id,
                    "open order we did not send (recorded from the user stream): cancelled",
                    order=report,
                )
            )
        elif report.status is not order.status or report.filled_quantity != order.filled_quantity:
            corrections.append(
                Correction(
                    Fix.UPDATE_ORDER,
                    order.market,
                    order.symbol,
                    order.client_order_id,
                    f"ledger {order.status.value} {order.filled_quantity} → exchange {report.status.value} "
                    f"{report.filled_quantity}",
                    order=report,
                )
            )
    for report in exchange_open_orders:
        if report.client_order_id in known:
            continue
        ours = is_own_client_order_id(report.client_order_id)
        if ours and policy is OrphanPolicy.RECLAIM_IF_SAFE:
            corrections.append(
                Correction(
                    Fix.ADOPT_ORDER,
                    report.market,
                    report.symbol,
                    report.client_order_id,
                    "open order with our id prefix, missing from the ledger: adopted",
                    order=report,
                )
            )
        else:
            why = "not ours" if not ours else "CONSERVATIVE policy"
            corrections.append(
                Correction(
                    Fix.CANCEL_ORDER,
                    report.market,
                    report.symbol,
                    report.client_order_id,
                    f"open order unknown to the ledger ({why}): cancelled",
                    order=report,
                )
            )
    corrections.extend(reconcile_positions(ledger_positions, exchange_positions, policy, max_adopt_notional_usdt))
    return ReconcileReport(tuple(corrections), ts)


def reconcile_positions(
    ledger_positions: Iterable[Position],
    exchange_positions: Sequence[PositionReport],
    policy: OrphanPolicy,
    max_adopt_notional_usdt: Decimal | None,
    explained: Mapping[tuple[Market, str], Decimal] | None = None,
) -> list[Correction]:
    """The position part of `reconcile`. `explained` are the positions the ledger's own fills add up
    to: an exchange position the ledger has as flat but its fills explain is ours (the node died
    before the position update was written), so it is set, never adopted or closed as an orphan."""
    corrections: list[Correction] = []
    ledger = {(p.market, p.symbol): p for p in ledger_positions}
    exchange = {(p.market, p.symbol): p for p in exchange_positions if p.quantity != 0}
    for key in sorted(set(ledger) | set(exchange), key=lambda k: (k[0].value, k[1])):
        market, symbol = key
        mine = ledger.get(key)
        theirs = exchange.get(key)
        mine_quantity = mine.quantity if mine is not None else Decimal(0)
        theirs_quantity = theirs.quantity if theirs is not None else Decimal(0)
        if mine_quantity == theirs_quantity:
            continue
        report = theirs or PositionReport(market, symbol, Decimal(0), Decimal(0))
        if mine_quantity == 0 and theirs is not None and (explained or {}).get(key) == theirs.quantity:
            corrections.append(
                Correction(Fix.SET_POSITION, market, symbol, symbol,
                           f"ledger flat, exchange {theirs.quantity}: our own fills add up to it (its "
                           "position update was lost), the ledger takes it", position=report)
            )  # fmt: skip
        elif mine_quantity == 0 and theirs is not None:
            notional = abs(theirs.quantity) * theirs.entry_price
            safe = max_adopt_notional_usdt is None or notional <= max_adopt_notional_usdt
            if policy is OrphanPolicy.RECLAIM_IF_SAFE and safe:
                corrections.append(
                    Correction(Fix.ADOPT_POSITION, market, symbol, symbol,
                               f"exchange position {theirs.quantity} unknown to the ledger: adopted", position=report)
                )  # fmt: skip
            else:
                why = "CONSERVATIVE policy" if policy is OrphanPolicy.CONSERVATIVE else f"notional {notional} too large"
                corrections.append(
                    Correction(Fix.CLOSE_POSITION, market, symbol, symbol,
                               f"exchange position {theirs.quantity} unknown to the ledger ({why}): closed",
                               position=report)
                )  # fmt: skip
        else:
            corrections.append(
                Correction(Fix.SET_POSITION, market, symbol, symbol,
                           f"ledger {mine_quantity} ≠ exchange {theirs_quantity}: set to the exchange's",
                           position=report)
            )  # fmt: skip
    return corrections
