"""Issue #6 (b) through the node: the kill switch — by hand (`TradingNode.kill`) or tripped by the
drawdown limit when a real price move marks the account down — leaves no open order and no position
on the exchange's side within 5 s, while the strategy keeps trying to trade. On the Binance venue
against the simulator over real sockets, and on the simulated (SimVenue) venue."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest

from kestrel.core.enums import OrderType, Side, TimeInForce
from kestrel.core.venue import BookView, ExecutionType, OrderRequest, OrderUpdate
from kestrel.node import TradingNode, VenueKind
from kestrel.node.kernel import PAPER_ACCOUNT
from kestrel.sim import FaultPlan, MarketSimulator
from kestrel.sim.trading.options import SimAccount, TradingOptions
from kestrel.storage.ledger import Ledger
from kestrel.strategy.base import Strategy
from tests.node.node_sim_helpers import FUT, KEY, SECRET, SYMBOL, node_config, simulator_options, trading_simulator

NANOS_PER_SECOND = 1_000_000_000
FIVE_SECONDS_NS = 5 * NANOS_PER_SECOND


class HoldAndRest(Strategy):
    """Buys a position, rests two bids below and an offer above the market, then keeps adding a bid
    every half second (refused once the kill switch is engaged)."""

    name = "hold_and_rest"
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, notional: Decimal, resting_notional: Decimal = Decimal(150)) -> None:
        super().__init__({})
        self.notional = notional
        self.resting_notional = resting_notional
        self.started = False
        self.next_ns = 0
        self.entry_price: Decimal | None = None
        self.mids: list[tuple[int, float]] = []
        self.updates: list[OrderUpdate] = []

    def on_book(self, book: BookView) -> None:
        if book.symbol != SYMBOL or book.best_bid_price is None or book.best_ask_price is None:
            return
        now = self.clock.timestamp_ns()
        if book.mid is not None:
            self.mids.append((now, float(book.mid)))
        instrument = self.instrument(FUT, SYMBOL)
        bid, ask = book.best_bid_price, book.best_ask_price
        resting = instrument.quantity_for_notional(self.resting_notional, bid, OrderType.LIMIT)
        if not self.started:
            self.started = True
            quantity = instrument.quantity_for_notional(self.notional, ask, OrderType.MARKET)
            self.submit_order(OrderRequest(FUT, SYMBOL, Side.BUY, OrderType.MARKET, quantity=quantity))
            for side, price in ((Side.BUY, bid * Decimal("0.98")), (Side.BUY, bid * Decimal("0.97")),
                                (Side.SELL, ask * Decimal("1.02"))):  # fmt: skip
                limit = instrument.round_price(price)
                self.submit_order(OrderRequest(FUT, SYMBOL, side, OrderType.LIMIT, quantity=resting, price=limit,
                                               time_in_force=TimeInForce.GTC))  # fmt: skip
            self.next_ns = now + NANOS_PER_SECOND // 2
        elif now >= self.next_ns:
            self.next_ns = now + NANOS_PER_SECOND // 2
            self.submit_order(OrderRequest(FUT, SYMBOL, Side.BUY, OrderType.LIMIT, quantity=resting,
                                           price=instrument.round_price(bid * Decimal("0.96")),
                                           time_in_force=TimeInForce.GTC))  # fmt: skip

    def on_order_update(self, update: OrderUpdate) -> None:
        self.updates.append(update)
        if update.fill is not None and update.order.order_type is OrderType.MARKET and self.entry_price is None:
            self.entry_price = update.fill.price

    def refused_by_risk(self) -> list[OrderUpdate]:
        return [
            u for u in self.updates if u.execution_type is ExecutionType.REJECTED and "kill_switch" in (u.reason or "")
        ]

    def mid_before(self, ts_ns: int) -> float:
        return [mid for ts, mid in self.mids if ts <= ts_ns][-1]


async def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        await asyncio.sleep(0.01)


class ExchangeSide:
    """Open orders and the position as the exchange holds them (the simulator's engine, or the paper
    node's own engine)."""

    def __init__(self, engine: Any, account: str) -> None:
        self.engine = engine
        self.account = account

    def open_orders(self) -> int:
        return len(self.engine.open_orders(self.account))

    def position(self) -> Decimal:
        return sum((p.quantity for p in self.engine.positions(self.account, SYMBOL)), Decimal(0))

    def flat(self) -> bool:
        return self.open_orders() == 0 and self.position() == 0


def binance_side(sim: MarketSimulator) -> ExchangeSide:
    assert sim.trading is not None
    return ExchangeSide(sim.trading.engine, sim.trading.account_id(KEY))


async def kill_and_check(node: TradingNode, strategy: HoldAndRest, exchange: ExchangeSide, reason: str | None,
                         before_kill: Callable[[], None] | None = None) -> int:  # fmt: skip
    """Engage the kill switch by hand (`reason`) or wait for it to trip; returns the ns it took to be flat."""
    await wait_for(lambda: exchange.position() > 0 and exchange.open_orders() >= 3, 30, "position and resting orders")
    assert node.venue is not None
    if before_kill is not None:
        before_kill()
    if reason is not None:
        node.kill(reason)
    else:
        await wait_for(lambda: node.venue is not None and node.venue.kill_switch_engaged, 60, "the drawdown kill")
    killed_at = node.venue.killed_at_ns
    assert killed_at is not None
    await wait_for(exchange.flat, 10, "no open order and no position")
    took = node.clock.timestamp_ns() - killed_at
    await asyncio.sleep(1.2)  # the strategy keeps trying: it stays flat
    assert exchange.flat(), (exchange.open_orders(), exchange.position())
    assert strategy.refused_by_risk()
    return took


async def run_until_killed(node: TradingNode, check: Any) -> Any:
    run = asyncio.create_task(node.run())
    try:
        return await check
    finally:
        node.request_stop()
        await run


def assert_audited(tmp_path: Path, reason_start: str) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    try:
        reasons = [event["detail"]["reason"] for event in ledger.audit_events("kill_switch")]
    finally:
        ledger.close()
    assert reasons and reasons[0].startswith(reason_start), reasons


# faults switched on just before the kill: its cancels and closes meet them
KILL_FAULTS = {
    "no-fault": FaultPlan(),
    "orders-5xx-unplaced": FaultPlan(order_5xx_unplaced_rate=0.5),
    "orders-5xx-placed": FaultPlan(order_5xx_placed_rate=0.5),
    "rest-5xx": FaultPlan(rest_5xx_rate=0.3),
    "rest-429": FaultPlan(rest_429_rate=0.2, retry_after_s=1),
}


@pytest.mark.parametrize(
    "fault", [pytest.param(name, marks=() if name == "no-fault" else pytest.mark.slow) for name in KILL_FAULTS]
)
async def test_manual_kill_on_the_binance_node_is_flat_within_5_s(
    shared_data: Path, tmp_path: Path, fault: str
) -> None:
    async with trading_simulator(simulator_options(shared_data)) as sim:
        strategy = HoldAndRest(Decimal(300))
        venue = {"recv_window_ms": 1000, "request_timeout_ms": 1000}
        node = TradingNode(node_config(sim, tmp_path, venue), strategy, mode="paper", venue_kind=VenueKind.BINANCE)
        check = kill_and_check(node, strategy, binance_side(sim), "manual: operator",
                               before_kill=lambda: sim.set_faults(KILL_FAULTS[fault]))  # fmt: skip
        took = await run_until_killed(node, check)
    assert took <= FIVE_SECONDS_NS, f"flat after {took / 1e9:.2f} s"
    assert_audited(tmp_path, "manual: operator")


# a small account holding five times its equity: the taker fee and half the spread cost ~0.3 %, a few
# ticks against the position take it past the 0.5 % limit (the day's start is the peak until a new one)
SMALL_ACCOUNT_USDT = Decimal(500)
DRAWDOWN_RISK = {"kill_switch_drawdown_pct": 0.5, "daily_drawdown_stop_pct": 0.5, "leverage": 20}


def assert_killed_by_the_market(node: TradingNode, strategy: HoldAndRest, took: int, tmp_path: Path) -> None:
    assert took <= FIVE_SECONDS_NS, f"flat after {took / 1e9:.2f} s"
    assert node.venue is not None and node.venue.killed_at_ns is not None
    assert node.venue.kill_reason is not None and node.venue.kill_reason.startswith("automatic: drawdown")
    assert node.risk is not None and node.risk.daily_stop_engaged
    assert strategy.entry_price is not None
    assert strategy.mid_before(node.venue.killed_at_ns) < strategy.entry_price  # the market moved against us
    assert_audited(tmp_path, "automatic: drawdown")


@pytest.mark.slow
async def test_drawdown_from_a_price_move_kills_the_binance_node_flat_within_5_s(
    shared_data: Path, tmp_path: Path
) -> None:
    account = SimAccount(name="node", api_key=KEY, api_secret=SECRET, futures={"USDT": SMALL_ACCOUNT_USDT})
    options = simulator_options(shared_data).model_copy(update={"trading": TradingOptions(accounts=[account])})
    async with trading_simulator(options) as sim:
        strategy = HoldAndRest(Decimal(2500), resting_notional=Decimal(120))
        node = TradingNode(node_config(sim, tmp_path, risk=DRAWDOWN_RISK), strategy, mode="paper",
                           venue_kind=VenueKind.BINANCE)  # fmt: skip
        took = await run_until_killed(node, kill_and_check(node, strategy, binance_side(sim), None))
    assert_killed_by_the_market(node, strategy, took, tmp_path)


@pytest.mark.slow
async def test_drawdown_from_a_price_move_kills_the_simulated_venue_node_flat_within_5_s(
    shared_data: Path, tmp_path: Path
) -> None:
    async with trading_simulator(simulator_options(shared_data)) as sim:
        strategy = HoldAndRest(Decimal(2500), resting_notional=Decimal(120))
        backtest = {"spot_balances": {}, "futures_balances": {"USDT": str(SMALL_ACCOUNT_USDT)}}
        config = node_config(sim, tmp_path, risk=DRAWDOWN_RISK, backtest=backtest)
        node = TradingNode(config, strategy, mode="paper", venue_kind=VenueKind.SIMULATED)

        async def check() -> int:
            await wait_for(lambda: node.engine is not None, 30, "the node's engine")
            return await kill_and_check(node, strategy, ExchangeSide(node.engine, PAPER_ACCOUNT), None)

        took = await run_until_killed(node, check())
    assert_killed_by_the_market(node, strategy, took, tmp_path)


async def test_manual_kill_on_the_simulated_venue_node_is_flat_within_5_s(shared_data: Path, tmp_path: Path) -> None:
    async with trading_simulator(simulator_options(shared_data)) as sim:
        strategy = HoldAndRest(Decimal(300))
        node = TradingNode(node_config(sim, tmp_path), strategy, mode="paper", venue_kind=VenueKind.SIMULATED)

        async def check() -> int:
            await wait_for(lambda: node.engine is not None, 30, "the node's engine")
            return await kill_and_check(node, strategy, ExchangeSide(node.engine, PAPER_ACCOUNT), "manual: operator")

        took = await run_until_killed(node, check())
    assert took <= FIVE_SECONDS_NS, f"flat after {took / 1e9:.2f} s"
    assert_audited(tmp_path, "manual: operator")
