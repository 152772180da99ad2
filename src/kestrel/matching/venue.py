"""`SimVenue`: the matching engine behind the `Venue` interface, with order latency.

A command (submit / cancel / modify) leaves the strategy at local time t and reaches the engine at
t + entry latency; the engine's events reach the strategy a response latency later. Deliveries keep the
exchange's order (a user-data stream is FIFO), so a delivery is never earlier than the one before it.
The strategy's queries answer from what has been delivered so far, like a live adapter's cache.

The driver owning the event loop calls `next_due_ns()` / `process_due(ts)` and hands engine events
caused by market data to `on_engine_events`.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal

from kestrel.core.clock import Clock
from kestrel.core.enums import Market, OrderStatus, OrderType, Side
from kestrel.core.errors import InvalidOrderError
from kestrel.core.identifiers import ClientOrderId
from kestrel.core.orders import Fill
from kestrel.core.venue import (
    Balance,
    ExecutionType,
    OcoRequest,
    OrderRequest,
    OrderSnapshot,
    OrderUpdate,
    PositionSnapshot,
    VenueEvent,
    VenueEventHandler,
)
from kestrel.matching.base import EngineEvent
from kestrel.matching.engine import MatchingEngine
from kestrel.matching.latency import ConstantLatency, OrderLatency

ZERO = Decimal(0)
CommandKind = Literal["submit", "oco", "cancel", "modify"]


@dataclass(frozen=True, slots=True)
class _Command:
    kind: CommandKind
    payload: object
    sent_ns: int


@dataclass(frozen=True, slots=True)
class _Submit:
    request: OrderRequest
    client_order_id: ClientOrderId


@dataclass(frozen=True, slots=True)
class _Modify:
    market: Market
    symbol: str
    client_order_id: ClientOrderId
    price: Decimal | None
    quantity: Decimal | None


@dataclass(frozen=True, slots=True)
class _Cancel:
    market: Market
    symbol: str
    client_order_id: ClientOrderId


class SimVenue:
    """One account of a `MatchingEngine`, seen through latency. Implements `kestrel.core.venue.Venue`."""

    def __init__(
        self,
        engine: MatchingEngine,
        account_id: str,
        clock: Clock,
        latency: OrderLatency | None = None,
        client_id_prefix: str = "bt",
    ) -> None:
        self.engine = engine
        self.account_id = account_id
        self.clock = clock
        self.latency = latency or OrderLatency(ConstantLatency(0), ConstantLatency(0))
        self._prefix = client_id_prefix
        self._ids = itertools.count(1)
        self._queue: list[tuple[int, int, object]] = []  # (due ns, sequence, command or events)
        self._sequence = itertools.count()
        self._last_delivery_ns = 0
        # every fill of this account at the exchange, in exchange order, whether market data or an
        # order's own arrival caused it (delivery to the strategy comes a response latency later)
        self.exchange_fills: list[Fill] = []
        self._handler: VenueEventHandler | None = None
        self._orders: dict[tuple[Market, str, str], OrderSnapshot] = {}
        self._submitted: dict[tuple[Market, str, str], tuple[OrderRequest, int]] = {}  # sent, not yet answered
        self._balances: dict[tuple[Market, str], Balance] = {}
        self._positions: dict[str, PositionSnapshot] = {}
        self.mid_at_send: dict[str, float] = {}  # client order id -> strategy's mid when sent (slippage)
        self.mid_of: Callable[[Market, str], float | None] | None = None
        self.commands_sent = 0
        self._seed_view()

    def _seed_view(self) -> None:
        for market in (Market.SPOT, Market.FUTURES):
            for balance in self.engine.balances(self.account_id, market):
                self._balances[(market, balance.asset)] = balance

    # ---- Venue: commands ------------------------------------------------------------------------
    def set_event_handler(self, handler: VenueEventHandler) -> None:
        self._handler = handler

    def _next_client_id(self) -> ClientOrderId:
        return ClientOrderId(f"{self._prefix}-{next(self._ids)}")

    def _send(self, kind: CommandKind, payload: object) -> None:
        now = self.clock.timestamp_ns()
        self.commands_sent += 1
        due = now + self.latency.entry.sample()
        heapq.heappush(self._queue, (due, next(self._sequence), _Command(kind, payload, now)))

    def submit_order(self, request: OrderRequest) -> ClientOrderId:
        client_id = request.client_order_id or self._next_client_id()
        key = (request.market, request.symbol, client_id)
        self._submitted[key] = (request, self.clock.timestamp_ns())
        self._orders.pop(key, None)
        if self.mid_of is not None:
            mid = self.mid_of(request.market, request.symbol)
            if mid is not None:
                self.mid_at_send[client_id] = mid
        self._send("submit", _Submit(request, client_id))
        return client_id

    def _submitted_snapshot(
        self, key: tuple[Market, str, str], status: OrderStatus = OrderStatus.SUBMITTED
    ) -> OrderSnapshot:
        """What the strategy knows of an order sent but not yet answered."""
        request, sent = self._submitted[key]
        return OrderSnapshot(
            order_id=0,
            client_order_id=ClientOrderId(key[2]),
            market=request.market,
            symbol=request.symbol,
            side=request.side,
            order_type=request.order_type,
            status=status,
            quantity=request.quantity or ZERO,
            filled_quantity=ZERO,
            cumulative_quote=ZERO,
            ts_created=sent,
            ts_updated=sent,
            price=request.price,
            stop_price=request.stop_price,
            time_in_force=request.time_in_force,
            reduce_only=request.reduce_only,
        )

    def submit_oco(self, request: OcoRequest) -> str:
        list_id = request.list_client_order_id or f"{self._prefix}-list-{next(self._ids)}"
        above = replace(request.above, client_order_id=request.above.client_order_id or self._next_client_id())
        below = replace(request.below, client_order_id=request.below.client_order_id or self._next_client_id())
        self._send("oco", replace(request, above=above, below=below, list_client_order_id=list_id))
        return list_id

    def cancel_order(self, market: Market, symbol: str, client_order_id: ClientOrderId) -> None:
        self._send("cancel", _Cancel(market, symbol, client_order_id))

    def modify_order(
        self,
        market: Market,
        symbol: str,
        client_order_id: ClientOrderId,
        *,
        price: Decimal | None = None,
        quantity: Decimal | None = None,
    ) -> None:
        self._send("modify", _Modify(market, symbol, client_order_id, price, quantity))

    # ---- Venue: queries (the delivered view) ----------------------------------------------------
    def order(self, market: Market, symbol: str, client_order_id: ClientOrderId) -> OrderSnapshot | None:
        key = (market, symbol, client_order_id)
        known = self._orders.get(key)
        if known is None and key in self._submitted:
            return self._submitted_snapshot(key)
        return known

    def open_orders(self, market: Market | None = None, symbol: str | None = None) -> list[OrderSnapshot]:
        def wanted(key: tuple[Market, str, str]) -> bool:
            return (market is None or key[0] is market) and (symbol is None or key[1] == symbol)

        known = [o for key, o in self._orders.items() if o.status.is_open and wanted(key)]
        return known + [self._submitted_snapshot(key) for key in self._submitted if wanted(key)]

    def positions(self) -> list[PositionSnapshot]:
        return [p for p in self._positions.values() if p.quantity != 0]

    def position(self, symbol: str) -> Decimal:
        snapshot = self._positions.get(symbol)
        return snapshot.quantity if snapshot is not None else ZERO

    def balances(self, market: Market) -> list[Balance]:
        return [b for (m, _), b in sorted(self._balances.items()) if m is market]

    # ---- event loop hooks -----------------------------------------------------------------------
    def next_due_ns(self) -> int | None:
        return self._queue[0][0] if self._queue else None

    def process_due(self, until_ns: int) -> None:
        """Run every command arrival and event delivery due at or before `until_ns`, in time order."""
        while self._queue and self._queue[0][0] <= until_ns:
            due, _, item = heapq.heappop(self._queue)
            if isinstance(item, _Command):
                self._arrive(item, due)
            else:
                self._deliver(item, due)  # type: ignore[arg-type]

    def on_engine_events(self, events: list[EngineEvent]) -> None:
        """Engine events caused by market data (fills, triggers, funding): on their way back."""
        if events:
            self._schedule_delivery(events, max(e.ts_event for e in events))

    def _schedule_delivery(self, events: list[EngineEvent], ts_exchange: int) -> None:
        for event in events:
            if isinstance(event, OrderUpdate) and event.fill is not None and event.account_id == self.account_id:
                self.exchange_fills.append(event.fill)
        due = max(self._last_delivery_ns, ts_exchange + self.latency.response.sample())
        self._last_delivery_ns = due
        heapq.heappush(self._queue, (due, next(self._sequence), events))

    def _arrive(self, command: _Command, ts: int) -> None:
        engine = self.engine
        try:
            if command.kind == "submit":
                assert isinstance(command.payload, _Submit)
                events = engine.submit_order(
                    self.account_id, command.payload.request, ts, command.payload.client_order_id
                )
            elif command.kind == "oco":
                assert isinstance(command.payload, OcoRequest)
                events = engine.submit_oco(self.account_id, command.payload, ts)
            elif command.kind == "cancel":
                assert isinstance(command.payload, _Cancel)
                cancel = command.payload
                events = engine.cancel_order(
                    self.account_id, cancel.market, cancel.symbol, ts, client_order_id=cancel.client_order_id
                )
            else:
                assert isinstance(command.payload, _Modify)
                modify = command.payload
                events = engine.modify_order(
                    self.account_id,
                    modify.market,
                    modify.symbol,
                    ts,
                    client_order_id=modify.client_order_id,
                    price=modify.price,
                    quantity=modify.quantity,
                )
        except InvalidOrderError as error:
            events = [self._rejection(command, error, ts)]
        self._schedule_delivery(events, ts)

    def _rejection(self, command: _Command, error: InvalidOrderError, ts: int) -> OrderUpdate:
        """A refused command as the strategy sees it: a REJECTED update (a failed cancel or modify
        leaves the order as it was, so its last known state is repeated with the error)."""
        payload = command.payload
        if isinstance(payload, _Submit):
            request, client_id = payload.request, payload.client_order_id
            key = (request.market, request.symbol, client_id)
            if key in self._submitted:
                snapshot = replace(self._submitted_snapshot(key, OrderStatus.REJECTED), ts_updated=ts)
            else:
                snapshot = self._blank_for(request.market, request.symbol, client_id, ts, OrderStatus.REJECTED)
        elif isinstance(payload, _Cancel | _Modify):
            known = self._orders.get((payload.market, payload.symbol, payload.client_order_id))
            snapshot = known or self._blank_for(payload.market, payload.symbol, payload.client_order_id, ts)
        else:
            assert isinstance(payload, OcoRequest)
            list_id = ClientOrderId(payload.list_client_order_id or "")
            snapshot = self._blank_for(payload.market, payload.symbol, list_id, ts, OrderStatus.REJECTED)
        return OrderUpdate(self.account_id, snapshot, ExecutionType.REJECTED, ts, ts, None, error.code, str(error))

    @staticmethod
    def _blank_for(
        market: Market, symbol: str, client_order_id: ClientOrderId, ts: int, status: OrderStatus = OrderStatus.UNKNOWN
    ) -> OrderSnapshot:
        return OrderSnapshot(
            0, client_order_id, market, symbol, Side.BUY, OrderType.LIMIT, status, ZERO, ZERO, ZERO, ts, ts
        )

    def _deliver(self, events: list[EngineEvent], ts: int) -> None:
        for event in events:
            delivered: VenueEvent = event.received_at(ts)
            if isinstance(delivered, OrderUpdate):
                snapshot = delivered.order
                key = (snapshot.market, snapshot.symbol, snapshot.client_order_id)
                self._submitted.pop(key, None)
                if (
                    delivered.execution_type is not ExecutionType.REJECTED
                    or snapshot.order_id
                    or key not in self._orders
                ):
                    self._orders[key] = snapshot
            else:
                for balance in delivered.balances:
                    self._balances[(balance.market, balance.asset)] = balance
                for position in delivered.positions:
                    self._positions[position.symbol] = position
            if self._handler is not None:
                self._handler(delivered)
