"""`GuardedVenue`: every order a strategy sends passes the ledger and the risk limits first.

It wraps any `Venue` (SimVenue in backtests, BinanceVenue in paper and live) and is itself a `Venue`,
so strategies do not know it is there:

- Ledger first: an order is written (status SUBMITTED) before the request leaves; if the ledger
  cannot be written the order is not sent (a REJECTED event says why). Each update, fill and position
  change is written when it arrives, before the strategy sees it; a restart rebuilds from the ledger
  and the reconciler settles the rest.
- Risk: an order that adds exposure is checked against the account limits (R-RK-1/2); a refusal is
  delivered as a REJECTED `OrderUpdate` (code None, reason naming the rule) and audited — never an
  exception. Reduce-only and close-position orders always pass.
- Kill switch: `kill(reason)` engages the risk engine's switch, cancels every open order and sends a
  reduce-only market order against every futures position — then keeps sweeping every 250 ms while
  the switch is engaged: an order acknowledged after the first sweep (it was in flight), a cancel
  that was refused or lost, a close that was rejected: each is sent again until the account is flat.
- Automatic kill: with a risk engine and a mark source, the account's equity is marked to market
  every 200 ms (wallet balances plus each position at the mark) and fed to `RiskEngine.on_equity`;
  the drawdown limit tripping there engages the kill switch as above.
- Client order ids are deterministic: `client_order_id("<prefix>-<n>")` for orders sent without one.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal

from kestrel.core.clock import Clock, TimeEvent
from kestrel.core.enums import Market, OrderStatus, OrderType, Side
from kestrel.core.identifiers import ClientOrderId, IntentId, VenueOrderId, client_order_id
from kestrel.core.logs import get_logger
from kestrel.core.orders import Order, Position
from kestrel.core.venue import (
    AccountUpdate,
    Balance,
    ExecutionType,
    OcoRequest,
    OrderRequest,
    OrderSnapshot,
    OrderUpdate,
    PositionSnapshot,
    Venue,
    VenueEvent,
    VenueEventHandler,
)
from kestrel.risk.limits import RiskEngine
from kestrel.storage.ledger import Ledger, LedgerError

ZERO = Decimal(0)
log = get_logger(__name__)
KILL_SWEEP_TIMER = "guard.kill_switch_sweep"
KILL_SWEEP_INTERVAL_NS = 250_000_000
KILL_RESEND_NS = 1_000_000_000  # a cancel or close not answered by then is sent again
EQUITY_CHECK_TIMER = "guard.equity_check"
EQUITY_CHECK_INTERVAL_NS = 200_000_000
QUOTE_ASSETS = frozenset({"USDT"})  # balances counted at face value (the account's unit)


def order_from_snapshot(snapshot: OrderSnapshot, intent_id: str) -> Order:
    """The ledger's form of a venue snapshot."""
    return Order.restore(
        client_order_id=snapshot.client_order_id, intent_id=IntentId(intent_id), market=snapshot.market,
        symbol=snapshot.symbol, side=snapshot.side, order_type=snapshot.order_type, quantity=snapshot.quantity,
        ts_init=snapshot.ts_created, price=snapshot.price, stop_price=snapshot.stop_price,
        time_in_force=snapshot.time_in_force, reduce_only=snapshot.reduce_only,
        close_position=snapshot.close_position, status=snapshot.status,
        venue_order_id=VenueOrderId(snapshot.order_id) if snapshot.order_id else None,
        filled_quantity=snapshot.filled_quantity, average_price=snapshot.average_price, ts_last=snapshot.ts_updated,
    )  # fmt: skip


class GuardedVenue:
    def __init__(
        self,
        inner: Venue,
        clock: Clock,
        ledger: Ledger | None = None,
        risk: RiskEngine | None = None,
        id_prefix: str = "run",
        leverage: int = 1,
        mark_of: Callable[[Market, str], Decimal | None] | None = None,
    ) -> None:
        self.inner = inner
        self.clock = clock
        self.ledger = ledger
        self.risk = risk
        self.id_prefix = id_prefix
        self.leverage = leverage
        self.mark_of = mark_of
        self._ids = itertools.count(1)
        self._handler: VenueEventHandler | None = None
        self._intents: dict[str, str] = {}
        self.rejections: list[OrderUpdate] = []
        self.kill_reason: str | None = None
        self.killed_at_ns: int | None = None
        self._kill_cancels: dict[str, int] = {}  # client id → when the kill switch last cancelled it
        self._kill_closes: dict[tuple[Market, str], tuple[ClientOrderId, int]] = {}  # its closing orders
        self._last_marks: dict[tuple[Market, str], Decimal] = {}
        inner.set_event_handler(self._on_event)
        if risk is not None and mark_of is not None:
            now = clock.timestamp_ns()
            clock.set_timer(EQUITY_CHECK_TIMER, now + EQUITY_CHECK_INTERVAL_NS, self._on_equity_check,
                            interval_ns=EQUITY_CHECK_INTERVAL_NS)  # fmt: skip

    # ---- Venue ---------------------------------------------------------------------------------
    def set_event_handler(self, handler: VenueEventHandler) -> None:
        self._handler = handler

    def submit_order(self, request: OrderRequest, intent_id: str | None = None) -> ClientOrderId:
        cid = request.client_order_id or client_order_id(f"{self.id_prefix}-{next(self._ids)}")
        request = replace(request, client_order_id=cid)
        now = self.clock.timestamp_ns()
        intent = intent_id or f"direct-{cid}"
        self._intents[cid] = intent
        reason = self._risk_refusal(request, now)
        if reason is None and self.ledger is not None:
            snapshot = self._submitted(request, now)
            try:
                self.ledger.record_order(order_from_snapshot(snapshot, intent))
            except LedgerError as error:
                reason = f"ledger unavailable, order not sent: {error}"
        if reason is not None:
            self._reject(request, now, reason)
            return cid
        return self.inner.submit_order(request)

    def submit_oco(self, request: OcoRequest) -> str:
        return self.inner.submit_oco(request)

    def cancel_order(self, market: Market, symbol: str, client_order_id: ClientOrderId) -> None:
        self.inner.cancel_order(market, symbol, client_order_id)

    def modify_order(
        self,
        market: Market,
        symbol: str,
        client_order_id: ClientOrderId,
        *,
        price: Decimal | None = None,
        quantity: Decimal | None = None,
    ) -> None:
        self.inner.modify_order(market, symbol, client_order_id, price=price, quantity=quantity)

    def order(self, market: Market, symbol: str, client_order_id: ClientOrderId) -> OrderSnapshot | None:
        return self.inner.order(market, symbol, client_order_id)

    def open_orders(self, market: Market | None = None, symbol: str | None = None) -> list[OrderSnapshot]:
        return self.inner.open_orders(market, symbol)

    def positions(self) -> list[PositionSnapshot]:
        return self.inner.positions()

    def balances(self, market: Market) -> list[Balance]:
        return self.inner.balances(market)

    # ---- kill switch ----------------------------------------------------------------------------
    def kill(self, reason: str) -> int:
        """Full stop: no new exposure, every open order cancelled, every position closed — and swept
        again until flat. Returns the number of commands sent now."""
        now = self.clock.timestamp_ns()
        if self.kill_reason is None:
            self.kill_reason, self.killed_at_ns = reason, now
        if self.risk is not None:
            self.risk.engage_kill_switch(reason)
        if self.ledger is not None:
            self.ledger.audit("kill_switch", {"reason": reason}, now)
        sent = self._flatten(now)
        self.clock.set_timer(KILL_SWEEP_TIMER, now + KILL_SWEEP_INTERVAL_NS, self._on_kill_sweep,
                             interval_ns=KILL_SWEEP_INTERVAL_NS)  # fmt: skip
        log.warning("kill switch engaged", reason=reason, commands=sent)
        return sent

    @property
    def kill_switch_engaged(self) -> bool:
        return self.kill_reason is not None and (self.risk is None or self.risk.kill_switch_engaged)

    def _flatten(self, now: int) -> int:
        """Cancel what is open and close what is held, skipping commands still in flight."""
        sent = 0
        for snapshot in self.inner.open_orders():
            last = self._kill_cancels.get(snapshot.client_order_id)
            if last is not None and now - last < KILL_RESEND_NS:
                continue
            self._kill_cancels[snapshot.client_order_id] = now
            self.inner.cancel_order(snapshot.market, snapshot.symbol, snapshot.client_order_id)
            sent += 1
        for position in self.inner.positions():
            if position.quantity == 0 or self._closing_in_flight(position.market, position.symbol, now):
                continue
            side = Side.SELL if position.quantity > 0 else Side.BUY
            client_id = self.submit_order(
                OrderRequest(position.market, position.symbol, side, OrderType.MARKET, abs(position.quantity),
                             reduce_only=True),
                intent_id=f"kill-{position.symbol}",
            )  # fmt: skip
            self._kill_closes[(position.market, position.symbol)] = (client_id, now)
            sent += 1
        return sent

    def _closing_in_flight(self, market: Market, symbol: str, now: int) -> bool:
        pending = self._kill_closes.get((market, symbol))
        if pending is None:
            return False
        client_id, sent_at = pending
        snapshot = self.inner.order(market, symbol, client_id)
        if snapshot is None or snapshot.status in (OrderStatus.SUBMITTED, OrderStatus.UNKNOWN):
            # not answered, or its outcome unknown (being resolved by query, which may take the
            # exchange's whole recvWindow): another close is safe — reduce-only cannot add exposure,
            # the exchange refuses whatever would take the position past zero
            return now - sent_at < KILL_RESEND_NS
        return not snapshot.status.is_terminal

    def _on_kill_sweep(self, event: TimeEvent) -> None:
        if not self.kill_switch_engaged:  # reset by the operator
            self.clock.cancel_timer(KILL_SWEEP_TIMER)
            return
        try:
            self._flatten(event.ts_init)
        except Exception:  # a timer callback must not take the node's loop down
            log.exception("kill switch sweep failed")

    # ---- automatic kill: equity marked to market ---------------------------------------------------
    def equity(self) -> Decimal | None:
        """Wallet balances (spot assets at their mark) plus every futures position at its mark; None
        while a position has never had a mark. A mark that goes missing (a book resyncing) is replaced
        by the last one seen: dropping the asset would look like a loss and trip the kill switch. A spot
        asset never marked (no book for it) is left out, which can only make equity rise later."""
        total = ZERO
        for market in (Market.SPOT, Market.FUTURES):
            for balance in self.inner.balances(market):
                if balance.asset in QUOTE_ASSETS:
                    total += balance.wallet
                elif market is Market.SPOT and balance.wallet:
                    mark = self._mark(market, f"{balance.asset}USDT")
                    total += balance.wallet * mark if mark is not None else ZERO
        for position in self.inner.positions():
            mark = self._mark(position.market, position.symbol)
            if mark is None:
                return None
            total += position.quantity * (mark - position.entry_price)
        return total

    def _mark(self, market: Market, symbol: str) -> Decimal | None:
        assert self.mark_of is not None
        mark = self.mark_of(market, symbol)
        if mark is not None:
            self._last_marks[(market, symbol)] = mark
            return mark
        return self._last_marks.get((market, symbol))

    def _on_equity_check(self, event: TimeEvent) -> None:
        assert self.risk is not None
        try:
            equity = self.equity()
            if equity is None or equity <= 0:
                return
            tripped = self.risk.on_equity(equity, event.ts_init)
            if tripped is not None:
                self.kill(f"automatic: {tripped.detail}")
        except Exception:  # a timer callback must not take the node's loop down
            log.exception("equity check failed")

    # ---- internals --------------------------------------------------------------------------------
    def _risk_refusal(self, request: OrderRequest, now: int) -> str | None:
        if self.risk is None or request.reduce_only or request.close_position:
            return None
        price = (
            request.price
            or request.stop_price
            or (self.mark_of(request.market, request.symbol) if self.mark_of else None)
        )
        if price is None or request.quantity is None:
            return None  # nothing to measure (e.g. a quote-sized spot market order): exchange checks apply
        leverage = 1 if request.market is Market.SPOT else self.leverage
        decision = self.risk.check_order(request.market, request.symbol, price * request.quantity, leverage, now)
        if decision.approved or decision.rejection is None:
            return None
        rejection = decision.rejection
        if self.ledger is not None:
            detail = {
                "rule": rejection.rule.value,
                "detail": rejection.detail,
                "client_order_id": request.client_order_id,
            }
            self.ledger.audit("risk.rejection", detail, now, subject=request.symbol)
        return f"risk: {rejection.rule.value}: {rejection.detail}"

    def _submitted(self, request: OrderRequest, now: int) -> OrderSnapshot:
        assert request.client_order_id is not None
        return OrderSnapshot(
            0, request.client_order_id, request.market, request.symbol, request.side, request.order_type,
            OrderStatus.SUBMITTED, request.quantity or ZERO, ZERO, ZERO, now, now, price=request.price,
            stop_price=request.stop_price, time_in_force=request.time_in_force, reduce_only=request.reduce_only,
            close_position=request.close_position,
        )  # fmt: skip

    def _reject(self, request: OrderRequest, now: int, reason: str) -> None:
        snapshot = replace(self._submitted(request, now), status=OrderStatus.REJECTED)
        update = OrderUpdate("guard", snapshot, ExecutionType.REJECTED, now, now, None, None, reason)
        self.rejections.append(update)
        if self._handler is not None:
            self._handler(update)

    def _on_event(self, event: VenueEvent) -> None:
        if self.ledger is not None:
            try:
                self._record(event)
            except LedgerError as error:  # keep trading state flowing; the reconciler repairs the ledger
                log.error("ledger write failed; reconciliation will repair it", error=str(error))
        if isinstance(event, AccountUpdate) and self.risk is not None:
            margin = sum((abs(p.initial_margin) for p in self.inner.positions()), ZERO)
            self.risk.on_capital_in_use(margin)
        if self._handler is not None:
            self._handler(event)

    def _record(self, event: VenueEvent) -> None:
        assert self.ledger is not None
        if isinstance(event, OrderUpdate):
            snapshot = event.order
            intent = self._intents.get(snapshot.client_order_id, f"direct-{snapshot.client_order_id}")
            order = order_from_snapshot(snapshot, intent)
            if self.ledger.get_order(snapshot.client_order_id) is None:
                self.ledger.record_order(order)
            else:
                self.ledger.update_order(order, reason=event.reason)
            if event.fill is not None:
                self.ledger.record_fill(event.fill)
        else:
            for position in event.positions:
                self.ledger.save_position(
                    Position(position.market, position.symbol, position.quantity, position.entry_price,
                             position.realized_pnl, ts_last=position.ts_updated)
                )  # fmt: skip
