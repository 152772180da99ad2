"""The live venue's local view of orders, and the one place where reports become events.

Several sources report the same order: the REST answer to the command, the user data stream, REST
queries (unknown-outcome resolution, the polling fallback, resyncs after a reconnect) and REST trade
lists. They overlap and race. `OrderView` merges them so the strategy sees what `SimVenue` shows: each
change once, in a sensible order (acknowledged, triggered, each fill, final state), never going back.

Rules:
- A fill is identified by (client order id, trade id). A trade seen before is dropped, whichever
  source reported it first. The view's filled quantity is the sum of the fills it emitted, so
  `filled_quantity` in every emitted snapshot equals what the consumer has received as fills.
- A report that claims more filled quantity than the fills seen cannot be shown yet (its fills are
  missing): the order is acknowledged if it was not, the report is held, and `on_missing_fills` asks
  the venue to fetch them (the stream normally delivers them first). Once the fills are in, the held
  report is applied.
- Otherwise a report is shown when it moves the order forward: pre-acknowledgement → NEW → partially
  filled → final, a trigger, or an amendment that changed price or quantity. Anything else is a
  duplicate or stale and is dropped.
- Every fill comes after the order's acknowledgement (a NEW is synthesised if the NEW event itself was
  lost, e.g. during a reconnect) and, for a conditional order, after its TRIGGERED.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal

from kestrel.core.enums import LiquiditySide, Market, OrderStatus, OrderType, Side
from kestrel.core.identifiers import ClientOrderId, TradeId, VenueOrderId
from kestrel.core.orders import Fill
from kestrel.core.venue import ExecutionType, OrderRequest, OrderSnapshot, OrderUpdate, VenueEvent

ZERO = Decimal(0)
OrderKey = tuple[Market, str, str]  # (market, symbol, client order id)

_PRE_ACK = frozenset({OrderStatus.INITIALIZED, OrderStatus.SUBMITTED, OrderStatus.UNKNOWN})
_EXECUTION_OF_STATUS = {
    OrderStatus.NEW: ExecutionType.NEW,
    OrderStatus.CANCELED: ExecutionType.CANCELED,
    OrderStatus.EXPIRED: ExecutionType.EXPIRED,
    OrderStatus.REJECTED: ExecutionType.REJECTED,
    OrderStatus.FILLED: ExecutionType.TRADE,
    OrderStatus.PARTIALLY_FILLED: ExecutionType.TRADE,
}


def rank(status: OrderStatus) -> int:
    """How far along its life an order is; a report never moves an order backwards."""
    if status in _PRE_ACK:
        return 0
    if status is OrderStatus.NEW:
        return 1
    if status.is_terminal:
        return 3
    return 2  # PARTIALLY_FILLED, PENDING_CANCEL


@dataclass
class TrackedOrder:
    snapshot: OrderSnapshot
    algo: bool = False  # a futures conditional order on the Algo service
    trade_ids: set[int] = field(default_factory=set)
    filled: Decimal = ZERO
    quote: Decimal = ZERO
    exchange_filled: Decimal = ZERO  # the highest cumulative quantity any report claimed
    anonymous_filled: Decimal = ZERO  # counted from a start-up snapshot, without trade ids
    held: OrderUpdate | None = None
    resulting_order_id: int | None = None  # algo: the matching-engine order once triggered

    @property
    def missing_fills(self) -> bool:
        return self.exchange_filled > self.filled


def key_of(snapshot: OrderSnapshot) -> OrderKey:
    return (snapshot.market, snapshot.symbol, snapshot.client_order_id)


class OrderView:
    """Orders of one account, merged from every source; emits `OrderUpdate`s through `emit`."""

    def __init__(
        self,
        account_id: str,
        emit: Callable[[VenueEvent], None],
        on_missing_fills: Callable[[OrderKey], None] | None = None,
    ) -> None:
        self.account_id = account_id
        self._emit = emit
        self.on_missing_fills = on_missing_fills
        self.orders: dict[OrderKey, TrackedOrder] = {}
        self.algo_by_resulting: dict[int, OrderKey] = {}  # futures order id of a triggered algo order
        self.duplicate_fills = 0
        self.stale_reports = 0
        self.synthetic_fills = 0

    # ---- queries --------------------------------------------------------------------------------
    def get(self, key: OrderKey) -> TrackedOrder | None:
        return self.orders.get(key)

    def snapshot(self, key: OrderKey) -> OrderSnapshot | None:
        tracked = self.orders.get(key)
        return tracked.snapshot if tracked is not None else None

    def open_orders(self, market: Market | None = None, symbol: str | None = None) -> list[OrderSnapshot]:
        """Open on the venue, or sent and not yet answered (as `SimVenue` lists them)."""
        return [
            tracked.snapshot
            for (m, s, _), tracked in self.orders.items()
            if (tracked.snapshot.status.is_open or tracked.snapshot.status in _PRE_ACK)
            and (market is None or m is market)
            and (symbol is None or s == symbol)
        ]

    def unfinished(self) -> list[TrackedOrder]:
        return [t for t in self.orders.values() if not t.snapshot.status.is_terminal or t.missing_fills]

    # ---- registration ---------------------------------------------------------------------------
    def submitted(self, request: OrderRequest, client_order_id: ClientOrderId, ts: int, algo: bool) -> OrderKey:
        snapshot = OrderSnapshot(
            order_id=0,
            client_order_id=client_order_id,
            market=request.market,
            symbol=request.symbol,
            side=request.side,
            order_type=request.order_type,
            status=OrderStatus.SUBMITTED,
            quantity=request.quantity or ZERO,
            filled_quantity=ZERO,
            cumulative_quote=ZERO,
            ts_created=ts,
            ts_updated=ts,
            price=request.price,
            stop_price=request.stop_price,
            time_in_force=request.time_in_force,
            reduce_only=request.reduce_only,
            close_position=request.close_position,
            iceberg_quantity=request.iceberg_quantity,
            working_type=request.working_type,
            activation_price=request.activation_price,
            trailing_callback_rate=request.trailing_callback_rate,
            trailing_delta_bips=request.trailing_delta_bips,
            good_till_ns=request.good_till_ns,
        )
        key = key_of(snapshot)
        self.orders[key] = TrackedOrder(snapshot, algo=algo)
        return key

    def mark_unknown(self, key: OrderKey, ts: int) -> None:
        """The command's outcome is unknown (no event: resolution by query follows)."""
        tracked = self.orders.get(key)
        if tracked is not None and tracked.snapshot.status is OrderStatus.SUBMITTED:
            tracked.snapshot = replace(tracked.snapshot, status=OrderStatus.UNKNOWN, ts_updated=ts)

    def seed(self, snapshot: OrderSnapshot, algo: bool = False) -> None:
        """An order found at start-up (REST): into the view without an event."""
        key = key_of(snapshot)
        if key in self.orders:
            return
        self.orders[key] = TrackedOrder(
            snapshot, algo=algo, filled=snapshot.filled_quantity, quote=snapshot.cumulative_quote,
            exchange_filled=snapshot.filled_quantity, anonymous_filled=snapshot.filled_quantity,
        )  # fmt: skip

    def link_resulting_order(self, key: OrderKey, order_id: int) -> None:
        tracked = self.orders.get(key)
        if tracked is not None:
            tracked.resulting_order_id = order_id
            self.algo_by_resulting[order_id] = key

    # ---- merging --------------------------------------------------------------------------------
    def apply(self, update: OrderUpdate, algo: bool = False) -> None:
        """A report from any source: the stream's updates, REST answers turned into updates."""
        key = key_of(update.order)
        tracked = self.orders.get(key)
        if tracked is None:  # placed elsewhere (another process, the exchange's liquidation engine)
            baseline = replace(
                update.order, status=OrderStatus.SUBMITTED, filled_quantity=ZERO, cumulative_quote=ZERO, triggered=False
            )
            tracked = self.orders[key] = TrackedOrder(baseline, algo=algo)
        report = update.order
        fill = update.fill
        if fill is not None and (
            fill.trade_id in tracked.trade_ids or ZERO < report.filled_quantity <= tracked.filled
        ):  # seen before, by id or by the cumulative quantity it brings the order to
            tracked.trade_ids.add(fill.trade_id)
            self.duplicate_fills += 1
            fill = None
        if fill is not None:
            self._apply_fill(tracked, update, fill)
            self._release_held(tracked)
            return
        if report.filled_quantity > tracked.filled:
            tracked.exchange_filled = max(tracked.exchange_filled, report.filled_quantity)
            self._acknowledge(tracked, update)
            if report.triggered:
                self._trigger(tracked, update)
            if tracked.held is None or rank(report.status) >= rank(tracked.held.order.status):
                tracked.held = update
            if self.on_missing_fills is not None:
                self.on_missing_fills(key)
            return
        self._apply_status(tracked, update)

    def apply_fill(self, key: OrderKey, fill: Fill, ts_init: int, cumulative: Decimal) -> None:
        """A fill from the REST trade list (the fallback when the stream did not deliver it);
        `cumulative` is the order's filled quantity after this trade (the list in trade-id order)."""
        tracked = self.orders.get(key)
        if tracked is None:
            return
        if fill.trade_id in tracked.trade_ids or cumulative <= tracked.anonymous_filled:
            tracked.trade_ids.add(fill.trade_id)
            self.duplicate_fills += 1
            return
        filled = tracked.filled + fill.quantity
        report = replace(
            tracked.snapshot,
            status=OrderStatus.FILLED if filled >= tracked.snapshot.quantity > 0 else OrderStatus.PARTIALLY_FILLED,
            filled_quantity=filled,
            cumulative_quote=tracked.quote + fill.notional,
            ts_updated=max(tracked.snapshot.ts_updated, fill.ts_event),
            triggered=tracked.snapshot.order_type.is_conditional,
        )
        update = OrderUpdate(self.account_id, report, ExecutionType.TRADE, fill.ts_event, ts_init, fill)
        self._apply_fill(tracked, update, fill)
        self._release_held(tracked)

    def synthesize_missing_fill(self, key: OrderKey, ts_init: int) -> Fill | None:
        """The last resort when a venue serves no trade list: one fill for the quantity the exchange
        reports and we have no fill for, priced from the reported cumulative quote. Its trade id is
        negative (no real trade has one) and its fee unknown (0, no asset): the position is right, the
        fee is settled by the next balance read. A later stream copy is recognised by cumulative quantity."""
        tracked = self.orders.get(key)
        if tracked is None or not tracked.missing_fills:
            return None
        report = tracked.held.order if tracked.held is not None else tracked.snapshot
        quantity = tracked.exchange_filled - tracked.filled
        if report.filled_quantity == tracked.exchange_filled and report.cumulative_quote > tracked.quote:
            price = (report.cumulative_quote - tracked.quote) / quantity
        else:
            price = report.average_price or report.price or ZERO
        self.synthetic_fills += 1
        order_id = tracked.resulting_order_id if tracked.algo and tracked.resulting_order_id else report.order_id
        fill = Fill(
            client_order_id=report.client_order_id,
            venue_order_id=VenueOrderId(order_id),
            trade_id=TradeId(-self.synthetic_fills),
            market=report.market,
            symbol=report.symbol,
            side=report.side,
            price=price,
            quantity=quantity,
            fee=ZERO,
            fee_asset="",
            liquidity=LiquiditySide.TAKER,
            ts_event=report.ts_updated,
            ts_init=ts_init,
        )
        self.apply_fill(key, fill, ts_init, tracked.exchange_filled)
        return fill

    def reject(self, key: OrderKey, code: int | None, reason: str, ts_event: int, ts_init: int) -> None:
        """The exchange refused the new order (or it was never placed): REJECTED, once."""
        tracked = self.orders.get(key)
        if tracked is None or tracked.snapshot.status not in _PRE_ACK:
            return
        snapshot = replace(tracked.snapshot, status=OrderStatus.REJECTED, ts_updated=ts_event)
        self._publish(tracked, snapshot, ExecutionType.REJECTED, ts_event, ts_init, code=code, reason=reason)

    def refuse(
        self, key: OrderKey, code: int | None, reason: str, ts_event: int, ts_init: int, side: Side = Side.BUY
    ) -> None:
        """A command was refused without changing any order (a cancel or modify of an order that is
        not open, an OCO list): the order's last known state with the error, as `SimVenue` does."""
        tracked = self.orders.get(key)
        market, symbol, client_id = key
        if tracked is not None:
            snapshot = tracked.snapshot
        else:
            snapshot = OrderSnapshot(
                0, ClientOrderId(client_id), market, symbol, side, OrderType.LIMIT, OrderStatus.UNKNOWN,
                ZERO, ZERO, ZERO, ts_event, ts_event,
            )  # fmt: skip
        self._emit(
            OrderUpdate(self.account_id, snapshot, ExecutionType.REJECTED, ts_event, ts_init, None, code, reason)
        )

    # ---- internals ------------------------------------------------------------------------------
    def _merged(self, tracked: TrackedOrder, report: OrderSnapshot, **changes: object) -> OrderSnapshot:
        """The report as the order's new state: our fill totals, the earliest creation time, the
        latest update time; one `replace` (the hot path of every event)."""
        current = tracked.snapshot
        merged: dict[str, object] = {
            "order_id": report.order_id or current.order_id,
            "filled_quantity": tracked.filled,
            "cumulative_quote": tracked.quote,
            "ts_created": report.ts_created
            if current.status in _PRE_ACK
            else min(current.ts_created, report.ts_created),
            "ts_updated": max(current.ts_updated, report.ts_updated),
            "triggered": current.triggered or report.triggered,
            "quantity": report.quantity or current.quantity,
            "expiry_reason": report.expiry_reason or current.expiry_reason,
        }
        if tracked.algo:  # the algo order keeps its id, type and trigger; the resulting order adds fills
            merged.update(
                order_id=current.order_id or report.order_id,
                order_type=current.order_type,
                stop_price=current.stop_price or report.stop_price,
                activation_price=current.activation_price or report.activation_price,
                trailing_callback_rate=current.trailing_callback_rate or report.trailing_callback_rate,
                close_position=current.close_position or report.close_position,
            )
        merged.update(changes)
        return replace(report, **merged)  # type: ignore[arg-type]

    def _publish(
        self, tracked: TrackedOrder, snapshot: OrderSnapshot, execution: ExecutionType, ts_event: int, ts_init: int,
        fill: Fill | None = None, code: int | None = None, reason: str | None = None,
    ) -> None:  # fmt: skip
        tracked.snapshot = snapshot
        self._emit(OrderUpdate(self.account_id, snapshot, execution, ts_event, ts_init, fill, code, reason))

    def _acknowledge(self, tracked: TrackedOrder, update: OrderUpdate) -> None:
        if tracked.snapshot.status in _PRE_ACK and update.order.status is not OrderStatus.REJECTED:
            snapshot = self._merged(tracked, update.order, status=OrderStatus.NEW, triggered=False, expiry_reason=None)
            self._publish(tracked, snapshot, ExecutionType.NEW, update.ts_event, update.ts_init)

    def _trigger(self, tracked: TrackedOrder, update: OrderUpdate) -> None:
        if tracked.snapshot.order_type.is_conditional and not tracked.snapshot.triggered:
            snapshot = self._merged(tracked, update.order, status=tracked.snapshot.status, triggered=True)
            self._publish(tracked, snapshot, ExecutionType.TRIGGERED, update.ts_event, update.ts_init)

    def _apply_fill(self, tracked: TrackedOrder, update: OrderUpdate, fill: Fill) -> None:
        self._acknowledge(tracked, update)
        self._trigger(tracked, update)
        tracked.trade_ids.add(fill.trade_id)
        tracked.filled += fill.quantity
        tracked.quote += fill.notional
        report = update.order
        tracked.exchange_filled = max(tracked.exchange_filled, report.filled_quantity, tracked.filled)
        quantity = report.quantity or tracked.snapshot.quantity
        if report.filled_quantity == tracked.filled and rank(report.status) >= 2:
            status = report.status
        else:  # fills arrived from several sources: the state follows the fills we have
            status = OrderStatus.FILLED if tracked.filled >= quantity > 0 else OrderStatus.PARTIALLY_FILLED
        if status is OrderStatus.FILLED and tracked.filled < quantity:
            status = OrderStatus.PARTIALLY_FILLED
        execution = (
            ExecutionType.CALCULATED if update.execution_type is ExecutionType.CALCULATED else ExecutionType.TRADE
        )
        snapshot = self._merged(tracked, report, status=status)
        self._publish(tracked, snapshot, execution, update.ts_event, update.ts_init, fill=fill, reason=update.reason)

    def _release_held(self, tracked: TrackedOrder) -> None:
        held = tracked.held
        if held is not None and held.order.filled_quantity <= tracked.filled:
            tracked.held = None
            self._apply_status(tracked, held)

    def _apply_status(self, tracked: TrackedOrder, update: OrderUpdate) -> None:
        report = update.order
        current = tracked.snapshot
        status = report.status
        if status is OrderStatus.REJECTED and current.status.is_open:
            # refused after it was accepted (e.g. an algo order failing its margin check when it
            # triggers): in the order's life cycle that is an expiry
            status = OrderStatus.EXPIRED
        if update.execution_type is ExecutionType.TRIGGERED or (report.triggered and not current.triggered):
            self._acknowledge(tracked, update)
            self._trigger(tracked, update)
            current = tracked.snapshot
        if update.execution_type is ExecutionType.AMENDMENT and not current.status.is_terminal:
            changed = report.price != current.price or (report.quantity and report.quantity != current.quantity)
            if changed:
                snapshot = self._merged(tracked, report, status=current.status)
                self._publish(tracked, snapshot, ExecutionType.AMENDMENT, update.ts_event, update.ts_init)
                return
        if rank(status) <= rank(current.status):
            self.stale_reports += 1  # a duplicate, or older than what we showed
            return
        if rank(status) == 2 and report.filled_quantity < tracked.filled:
            self.stale_reports += 1
            return
        if status is OrderStatus.FILLED and tracked.filled < (report.quantity or current.quantity):
            self.stale_reports += 1  # FILLED without all the fills: they come, and bring the status
            return
        if rank(status) >= 2 and current.status in _PRE_ACK:
            self._acknowledge(tracked, update)
        execution = _EXECUTION_OF_STATUS.get(status, ExecutionType.NEW)
        snapshot = self._merged(tracked, report, status=status)
        self._publish(
            tracked, snapshot, execution, update.ts_event, update.ts_init, code=update.code, reason=update.reason
        )

    def forget_terminal(self, keep: int = 10_000) -> int:
        """Drop the oldest finished orders beyond `keep` (a long-running node's memory bound)."""
        finished = [k for k, t in self.orders.items() if t.snapshot.status.is_terminal and not t.missing_fills]
        dropped = finished[: max(0, len(finished) - keep)]
        for key in dropped:
            tracked = self.orders.pop(key)
            if tracked.resulting_order_id is not None:
                self.algo_by_resulting.pop(tracked.resulting_order_id, None)
        return len(dropped)

    def keys(self) -> Iterable[OrderKey]:
        return self.orders.keys()
