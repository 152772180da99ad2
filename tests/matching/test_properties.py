"""Property tests of the engine (issue 4 acceptance): random books, trades, orders and marks.

After every step: quantity is conserved (an order's fills add up to its filled quantity, never more
than asked), no fill is better than the book allowed at that moment, queue positions are never
negative, every fee is exactly notional × rate, balances never go negative (a liquidation's excess loss
is the insurance fund's), and a reduce-only order never increases or flips a position.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import event as note_statistic
from hypothesis import strategies as st

from kestrel.core.enums import LiquiditySide, Market, OrderType, Side, TimeInForce
from kestrel.core.errors import InvalidOrderError
from kestrel.core.venue import ExecutionType, OrderRequest, OrderUpdate
from kestrel.matching import kernel as k
from kestrel.matching.engine import MatchingEngine
from tests.matching.helpers import FUT, SPOT, D, depth, engine, mark, snapshot, trade

TICK = D("0.1")
KINDS = ["market", "limit", "ioc", "post_only", "stop", "take_profit"]

order_operation = st.tuples(
    st.just("order"),
    st.sampled_from(KINDS),
    st.integers(0, 1),
    st.integers(-5, 5),
    st.integers(1, 30),
    st.booleans(),
    st.booleans(),
)
operation = st.one_of(
    st.tuples(st.just("depth"), st.integers(0, 1), st.integers(-6, 6), st.integers(0, 40)),
    st.tuples(st.just("trade"), st.integers(0, 1), st.integers(-5, 5), st.integers(1, 30)),
    order_operation,
    order_operation,
    order_operation,
    st.tuples(st.just("cancel"), st.integers(1, 40)),
    st.tuples(st.just("mark"), st.integers(-150, 150)),
)


def price_of(offset: int) -> Decimal:
    return D(100) + TICK * offset


def request_for(kind: str, side: Side, offset: int, size: int, reduce_only: bool, spot: bool) -> OrderRequest:
    market = SPOT if spot else FUT
    quantity = D(size) / 10
    price = price_of(offset)
    if spot:
        price = price.quantize(D("0.01"))
        reduce_only = False
    if kind == "market":
        return OrderRequest(market, "BTCUSDT", side, OrderType.MARKET, quantity=quantity, reduce_only=reduce_only)
    if kind in ("limit", "ioc", "post_only"):
        tif = {
            "limit": TimeInForce.GTC,
            "ioc": TimeInForce.IOC,
            "post_only": TimeInForce.GTC if spot else TimeInForce.GTX,
        }[kind]
        order_type = OrderType.LIMIT_MAKER if kind == "post_only" and spot else OrderType.LIMIT
        return OrderRequest(
            market,
            "BTCUSDT",
            side,
            order_type,
            quantity=quantity,
            price=price,
            time_in_force=None if order_type is OrderType.LIMIT_MAKER else tif,
            reduce_only=reduce_only,
        )
    order_type = OrderType.STOP_MARKET if kind == "stop" else OrderType.TAKE_PROFIT_MARKET
    return OrderRequest(
        market, "BTCUSDT", side, order_type, quantity=quantity, stop_price=price, reduce_only=reduce_only
    )


class Checker:
    def __init__(self, e: MatchingEngine) -> None:
        self.e = e
        self.filled: dict[int, Decimal] = {}
        self.position = D(0)

    def book_before(self, market: Market) -> tuple[Decimal | None, Decimal | None]:
        book = self.e.book(market, "BTCUSDT")
        return book.best_bid_price, book.best_ask_price

    def check(self, events: list, before: dict[Market, tuple[Decimal | None, Decimal | None]]) -> None:
        e = self.e
        for event in events:
            if not isinstance(event, OrderUpdate) or event.fill is None:
                continue
            fill, order = event.fill, event.order
            self.filled[order.order_id] = self.filled.get(order.order_id, D(0)) + fill.quantity
            assert self.filled[order.order_id] == order.filled_quantity <= max(order.quantity, order.filled_quantity)
            account = e.accounts["a"]
            notional = fill.price * fill.quantity
            if event.execution_type is ExecutionType.CALCULATED:  # liquidation at mark, liquidation fee
                assert fill.fee == notional * D("0.0125")
            elif fill.market is SPOT:
                rate = account.fees.rate(SPOT, fill.liquidity)
                assert fill.fee == (fill.quantity if fill.side is Side.BUY else notional) * rate
            else:
                assert fill.fee == notional * account.fees.rate(FUT, fill.liquidity)
            if order.price is not None and fill.liquidity is LiquiditySide.MAKER:
                assert fill.price == order.price
            if order.price is not None:
                assert fill.price <= order.price if fill.side is Side.BUY else fill.price >= order.price
            bid, ask = before[fill.market]
            if fill.liquidity is LiquiditySide.TAKER and event.execution_type is not ExecutionType.CALCULATED:
                if fill.side is Side.BUY:
                    assert ask is not None and fill.price >= ask
                else:
                    assert bid is not None and fill.price <= bid
            if fill.market is FUT:
                after = self.position + fill.quantity * fill.side.sign
                if order.reduce_only or order.close_position:
                    assert abs(after) <= abs(self.position) and after * self.position >= 0
                self.position = after
        state = e.state
        for slot in range(int(state.ctl[k.CTL_ORDER_SLOTS])):
            if state.orders[slot, k.O_STATE] != k.STATE_FREE:
                assert state.ahead[slot] >= 0
        account = e.accounts["a"]
        for asset in account.spot.assets():
            assert account.spot.free(asset) >= 0 and account.spot.locked(asset) >= 0
        assert account.futures.wallet("USDT") >= 0
        positions = e.positions("a")
        assert (positions[0].quantity if positions else D(0)) == self.position


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, min_size=10, max_size=80), st.integers(1, 50))
def test_engine_invariants_hold_under_random_flow(operations: list[tuple], leverage: int) -> None:
    e = engine(futures_usdt=D(40), spot_usdt=D(300), spot_btc=D(2))
    e.set_leverage("a", "BTCUSDT", leverage, 0)
    e.apply(snapshot(FUT, bids=[(99.9, 1.0), (99.8, 2.0)], asks=[(100.1, 1.0), (100.2, 2.0)]))
    e.apply(snapshot(SPOT, bids=[(99.9, 1.0), (99.8, 2.0)], asks=[(100.1, 1.0), (100.2, 2.0)]))
    checker = Checker(e)
    ts = 10_000
    update_id = 100
    for op in operations:
        ts += 1_000_000
        before = {m: checker.book_before(m) for m in (FUT, SPOT)}
        events: list = []
        if op[0] == "depth":
            _, side, offset, size = op
            level = [(float(price_of(offset)), size / 10)]
            for market in (FUT, SPOT):
                events += e.apply(
                    depth(
                        level if side == 0 else [],
                        level if side == 1 else [],
                        ts,
                        update_id + 1,
                        update_id + 1,
                        update_id,
                        market,
                    )
                )
            update_id += 1
        elif op[0] == "trade":
            _, aggressor, offset, size = op
            for market in (FUT, SPOT):
                events += e.apply(
                    trade(float(price_of(offset)), size / 10, Side.BUY if aggressor == 0 else Side.SELL, ts, market)
                )
        elif op[0] == "order":
            _, kind, side, offset, size, reduce_only, spot = op
            try:
                events += e.submit_order(
                    "a", request_for(kind, Side.BUY if side == 0 else Side.SELL, offset, size, reduce_only, spot), ts
                )
            except InvalidOrderError as error:
                assert error.code is not None
        elif op[0] == "cancel":
            order = e.orders.get(op[1])
            if order is not None and order.is_open:
                events += e.cancel_order("a", order.market, "BTCUSDT", ts, order_id=order.order_id)
        else:
            events += e.apply(mark(float(price_of(op[1])), ts))
        checker.check(events, before)
    for order in e.orders.values():
        assert D(0) <= order.filled <= max(order.quantity, order.filled)
    fills = sum(1 for o in e.orders.values() if o.filled > 0)
    note_statistic(f"orders with fills: {min(fills, 5)}+" if fills >= 5 else f"orders with fills: {fills}")
    if e.liquidations:
        note_statistic("liquidated")
    if any(o.reduce_only and o.filled > 0 for o in e.orders.values()):
        note_statistic("reduce-only fill")


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 125),
    st.integers(1, 200),
    st.booleans(),
    st.booleans(),
    st.lists(st.integers(-400, 400), min_size=1, max_size=30),
)
def test_positions_are_liquidated_at_the_mark_and_wallets_stay_non_negative(
    leverage: int, size: int, short: bool, isolated: bool, path: list[int]
) -> None:
    from kestrel.core.enums import MarginType

    e = engine(futures_usdt=D(50))
    e.apply(snapshot(FUT, bids=[(99.9, 500.0)], asks=[(100.1, 500.0)]))
    if isolated:
        e.set_margin_type("a", "BTCUSDT", MarginType.ISOLATED, 0)
    e.set_leverage("a", "BTCUSDT", leverage, 0)
    side = Side.SELL if short else Side.BUY
    try:
        e.submit_order("a", OrderRequest(FUT, "BTCUSDT", side, OrderType.MARKET, quantity=D(size) / 100), 1_000)
    except InvalidOrderError:
        return
    futures = e.accounts["a"].futures
    for n, offset in enumerate(path):
        e.apply(mark(float(price_of(offset)), 2_000 + n))
        assert futures.wallet("USDT") >= 0
        position = futures.positions["BTCUSDT"]
        if position.quantity != 0:
            backing = position.isolated_wallet if isolated else futures.cross_wallet("USDT")
            assert backing + futures.unrealized_pnl(position) > futures.maintenance_margin(position)
    if e.liquidations:
        note_statistic("liquidated")
