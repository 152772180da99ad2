"""The venue contract: what every `Venue` adapter must show a strategy (STYLE.md §12).

`SimVenue` (in process) and `BinanceVenue` (against our simulator, over real sockets) inherit
`VenueContract` through a test class that provides a `harness` fixture (a `VenueHarness`): the venue,
the market and symbol to trade, a valid small quantity, the book's best prices, and `settle()`, which
returns once every command sent so far has been answered and its events delivered.

Behaviours checked:
- a command returns its client id at once; its outcome arrives later as events;
- acknowledgement (NEW) comes before any fill, fills before the final state, nothing after it;
- each fill once: the fills' quantities add up to the order's filled quantity;
- a cancel ends a resting order (CANCELED) and removes it from the open orders;
- a refused order is REJECTED with the exchange's code, without an acknowledgement;
- a cancel of an order the venue does not know is refused with -2011;
- queries (`order`, `open_orders`, `balances`) reflect the events delivered so far;
- event delivery times never go backwards.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

from kestrel.core.enums import Market, OrderStatus, OrderType, Side, TimeInForce
from kestrel.core.identifiers import ClientOrderId
from kestrel.core.venue import (
    AccountUpdate,
    ExecutionType,
    OrderRequest,
    OrderUpdate,
    Venue,
    VenueEvent,
)


@dataclass
class VenueHarness(ABC):
    venue: Venue
    market: Market
    symbol: str
    quantity: Decimal  # valid on the lot grid, above the minimum notional at the current price
    tick: Decimal
    events: list[VenueEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.venue.set_event_handler(self.events.append)

    @abstractmethod
    async def settle(self) -> None:
        """Return once every command sent so far is answered and its events are delivered."""

    @abstractmethod
    def best_prices(self) -> tuple[Decimal, Decimal]:
        """(best bid, best ask) of the book the venue matches against."""

    def on_grid(self, price: Decimal) -> Decimal:
        return (price / self.tick).to_integral_value(rounding=ROUND_DOWN) * self.tick

    def updates(self, client_order_id: str) -> list[OrderUpdate]:
        return [e for e in self.events if isinstance(e, OrderUpdate) and e.order.client_order_id == client_order_id]


_RANK = {OrderStatus.NEW: 1, OrderStatus.PARTIALLY_FILLED: 2}


def check_life_cycle(updates: list[OrderUpdate]) -> None:
    """NEW first (unless rejected), fills before the end, nothing after a final state, never backwards."""
    assert updates, "no event for the order"
    if updates[0].execution_type is ExecutionType.REJECTED:
        assert len(updates) == 1
        return
    assert updates[0].execution_type is ExecutionType.NEW and updates[0].order.status is OrderStatus.NEW
    seen_final = False
    last_rank = 0
    filled = Decimal(0)
    for update in updates:
        assert not seen_final, f"event after the final state: {update.execution_type}"
        status = update.order.status
        rank = 3 if status.is_terminal else _RANK.get(status, 0)
        assert rank >= last_rank, f"{status} after a later state"
        last_rank = rank
        if update.fill is not None:
            filled += update.fill.quantity
        assert update.order.filled_quantity == filled, "filled quantity differs from the fills delivered"
        seen_final = status.is_terminal


class VenueContract:
    """Inherit in a `Test...` class that defines a `harness` fixture."""

    def resting_buy(self, harness: VenueHarness, client_id: str) -> OrderRequest:
        bid, _ = harness.best_prices()
        price = harness.on_grid(bid * Decimal("0.99"))  # well below the book, inside the price band
        return OrderRequest(harness.market, harness.symbol, Side.BUY, OrderType.LIMIT, harness.quantity, price,
                            time_in_force=TimeInForce.GTC, client_order_id=ClientOrderId(client_id))  # fmt: skip

    async def test_ack_then_cancel(self, harness: VenueHarness) -> None:
        venue = harness.venue
        client_id = venue.submit_order(self.resting_buy(harness, "contract-rest-1"))
        assert client_id == "contract-rest-1"
        assert not harness.updates(client_id), "events must not be delivered before the command returns"
        await harness.settle()
        (ack,) = harness.updates(client_id)
        assert ack.execution_type is ExecutionType.NEW and ack.order.order_id > 0
        known = venue.order(harness.market, harness.symbol, client_id)
        assert known is not None and known.status is OrderStatus.NEW
        assert client_id in {o.client_order_id for o in venue.open_orders(harness.market, harness.symbol)}
        venue.cancel_order(harness.market, harness.symbol, client_id)
        await harness.settle()
        updates = harness.updates(client_id)
        check_life_cycle(updates)
        assert updates[-1].execution_type is ExecutionType.CANCELED
        assert updates[-1].order.status is OrderStatus.CANCELED
        assert client_id not in {o.client_order_id for o in venue.open_orders(harness.market, harness.symbol)}
        assert venue.order(harness.market, harness.symbol, client_id).status is OrderStatus.CANCELED  # type: ignore[union-attr]

    async def test_marketable_order_fills_once(self, harness: VenueHarness) -> None:
        venue = harness.venue
        before = {b.asset: b for b in venue.balances(harness.market)}
        client_id = venue.submit_order(
            OrderRequest(
                harness.market,
                harness.symbol,
                Side.BUY,
                OrderType.MARKET,
                harness.quantity,
                client_order_id=ClientOrderId("contract-take-1"),
            )
        )
        await harness.settle()
        updates = harness.updates(client_id)
        check_life_cycle(updates)
        fills = [u.fill for u in updates if u.fill is not None]
        assert fills, "a market order on a book with liquidity must fill"
        assert len({f.trade_id for f in fills}) == len(fills), "a fill was delivered twice"
        final = updates[-1].order
        assert final.status is OrderStatus.FILLED and final.filled_quantity == harness.quantity
        assert sum(f.quantity for f in fills) == harness.quantity
        assert all(f.side is Side.BUY and f.price > 0 and f.client_order_id == client_id for f in fills)
        known = venue.order(harness.market, harness.symbol, client_id)
        assert known is not None and known.status is OrderStatus.FILLED and known.filled_quantity == harness.quantity
        accounts = [e for e in harness.events if isinstance(e, AccountUpdate) and e.market is harness.market]
        assert accounts, "a fill changes balances: an account update must follow"
        after = {b.asset: b for b in venue.balances(harness.market)}
        assert after != before, "balances must reflect the fill"
        if harness.market is Market.FUTURES:
            position = {p.symbol: p for p in venue.positions()}.get(harness.symbol)
            assert position is not None and position.quantity >= harness.quantity

    async def test_rejection_carries_the_exchange_code(self, harness: VenueHarness) -> None:
        venue = harness.venue
        bid, _ = harness.best_prices()
        off_grid = harness.on_grid(bid * Decimal("0.99")) + harness.tick / 2
        client_id = venue.submit_order(
            OrderRequest(
                harness.market,
                harness.symbol,
                Side.BUY,
                OrderType.LIMIT,
                harness.quantity,
                off_grid,
                time_in_force=TimeInForce.GTC,
                client_order_id=ClientOrderId("contract-bad-1"),
            )
        )
        await harness.settle()
        (rejected,) = harness.updates(client_id)
        assert rejected.execution_type is ExecutionType.REJECTED and rejected.order.status is OrderStatus.REJECTED
        expected = -4014 if harness.market is Market.FUTURES else -1013
        assert rejected.code == expected, rejected.reason
        assert client_id not in {o.client_order_id for o in venue.open_orders()}

    async def test_cancel_of_an_unknown_order_is_refused(self, harness: VenueHarness) -> None:
        harness.venue.cancel_order(harness.market, harness.symbol, ClientOrderId("contract-nobody"))
        await harness.settle()
        (refused,) = harness.updates("contract-nobody")
        assert refused.execution_type is ExecutionType.REJECTED and refused.code == -2011

    async def test_queries_follow_the_events_and_time_moves_forward(self, harness: VenueHarness) -> None:
        venue = harness.venue
        ids = [venue.submit_order(self.resting_buy(harness, f"contract-q-{n}")) for n in range(3)]
        await harness.settle()
        open_ids = {o.client_order_id for o in venue.open_orders(harness.market, harness.symbol)}
        assert set(ids) <= open_ids
        for client_id in ids[:2]:
            venue.cancel_order(harness.market, harness.symbol, client_id)
        await harness.settle()
        open_ids = {o.client_order_id for o in venue.open_orders(harness.market, harness.symbol)}
        assert ids[2] in open_ids and not {ids[0], ids[1]} & open_ids
        for client_id in ids:
            last = harness.updates(client_id)[-1].order
            assert venue.order(harness.market, harness.symbol, client_id) == last
        venue.cancel_order(harness.market, harness.symbol, ids[2])
        await harness.settle()
        delivered = [e.ts_init for e in harness.events]
        assert delivered == sorted(delivered)
