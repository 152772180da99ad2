"""What the node fault and kill-switch tests share: a simulator with one account, a node config
pointing at it, a strategy that trades steadily, and the simulator's own records to check against."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from kestrel.config.loading import load_config
from kestrel.config.models import KestrelConfig
from kestrel.core.enums import Market, OrderStatus, OrderType, Side, TimeInForce
from kestrel.core.identifiers import ClientOrderId
from kestrel.core.venue import BookView, OrderRequest, OrderSnapshot, OrderUpdate
from kestrel.sim import FaultPlan, MarketSimulator, ProtocolLimits, SimulatorOptions
from kestrel.sim.trading.options import SimAccount, TradingOptions
from kestrel.strategy.base import Strategy
from tests.marketdata.simulated import venue_overrides

KEY = "NodeFaultKey0123456789"
SECRET = "NodeFaultSecret0123456789abcdef"
SYMBOL = "BTCUSDT"
FUT = Market.FUTURES
NANOS_PER_SECOND = 1_000_000_000
UNRESOLVED = {OrderStatus.INITIALIZED, OrderStatus.SUBMITTED, OrderStatus.UNKNOWN, OrderStatus.PENDING_CANCEL}


class SteadyTrader(Strategy):
    """Every `step_s` while trading: a market buy, a resting bid 2 % under the market, a market sell,
    a cancel of its oldest resting bid — round and round, so orders, fills, cancels and a position
    that comes and goes are always in flight. Stops trading after `trading_s`."""

    name = "steady_trader"
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, trading_s: float = 3.0, step_s: float = 0.2, notional: Decimal = Decimal(150)) -> None:
        super().__init__({})
        self.trading_s = trading_s
        self.step_ns = int(step_s * NANOS_PER_SECOND)
        self.notional = notional
        self.first_ns: int | None = None
        self.next_ns = 0
        self.steps = 0
        self.sent: list[ClientOrderId] = []
        self.resting: list[ClientOrderId] = []
        self.last: dict[str, OrderUpdate] = {}

    @property
    def done(self) -> bool:
        return self.first_ns is not None and self.clock.timestamp_ns() >= self.first_ns + self.trading_s * 1e9

    def on_book(self, book: BookView) -> None:
        now = self.clock.timestamp_ns()
        if book.symbol != SYMBOL or book.best_bid_price is None or now < self.next_ns:
            return
        if self.first_ns is None:
            self.first_ns = now
        if self.done:
            return
        self.next_ns = now + self.step_ns
        instrument = self.instrument(FUT, SYMBOL)
        quantity = instrument.quantity_for_notional(self.notional, book.best_bid_price, OrderType.MARKET)
        step = self.steps % 4
        self.steps += 1
        if step in (0, 2):
            side = Side.BUY if step == 0 else Side.SELL
            self.sent.append(self.submit_order(OrderRequest(FUT, SYMBOL, side, OrderType.MARKET, quantity=quantity)))
        elif step == 1:
            bid = instrument.round_price(book.best_bid_price * Decimal("0.98"))
            client_id = self.submit_order(OrderRequest(FUT, SYMBOL, Side.BUY, OrderType.LIMIT, quantity=quantity,
                                                       price=bid, time_in_force=TimeInForce.GTC))  # fmt: skip
            self.sent.append(client_id)
            self.resting.append(client_id)
        elif self.resting:
            self.cancel_order(FUT, SYMBOL, self.resting.pop(0))

    def on_order_update(self, update: OrderUpdate) -> None:
        self.last[update.order.client_order_id] = update

    def unresolved(self) -> list[str]:
        """Orders sent whose state the node does not know yet (no answer, or an unknown outcome)."""
        pending = []
        for client_id in self.sent:
            update = self.last.get(client_id)
            if update is None or update.order.status in UNRESOLVED:
                pending.append(client_id)
        return pending


def simulator_options(shared_data: Path, faults: FaultPlan | None = None, weight_budget: int = 2400,
                      **values: Any) -> SimulatorOptions:  # fmt: skip
    values.setdefault("markets", (FUT,))
    values.setdefault("symbols", [SYMBOL])
    values.setdefault("seed", 5)
    return SimulatorOptions(
        data_dir=shared_data, faults=faults or FaultPlan(),
        limits=ProtocolLimits(weight_per_minute_futures=weight_budget),
        trading=TradingOptions(accounts=[SimAccount(name="node", api_key=KEY, api_secret=SECRET)]), **values,
    )  # fmt: skip


@asynccontextmanager
async def trading_simulator(options: SimulatorOptions) -> AsyncIterator[MarketSimulator]:
    async with MarketSimulator(options) as sim:
        assert sim.trading is not None
        sim.trading.activate(FUT, SYMBOL, sim.trading.sync())  # the first activation compiles the kernels
        yield sim


def node_config(sim: MarketSimulator, tmp_path: Path, venue: dict[str, Any] | None = None,
                risk: dict[str, Any] | None = None, **sections: Any) -> KestrelConfig:  # fmt: skip
    return load_config(
        None,
        overrides={
            "environment": "dev",
            "venue": {**venue_overrides(sim), "api_key": KEY, "api_secret": SECRET, **(venue or {})},
            "data": {"ingest": {"markets": ["futures"], "symbols": [SYMBOL], "streams": ["depth@100ms", "aggTrade"]}},
            "storage": {"ledger_url": f"sqlite:///{tmp_path / 'ledger.sqlite'}", "data_dir": str(tmp_path)},
            "risk": risk or {},
            **sections,
        },
        env_file=None,
    )  # fmt: skip


def simulator_orders(sim: MarketSimulator) -> list[OrderSnapshot]:
    """The simulator's own record of every order the account placed (open and finished)."""
    assert sim.trading is not None
    account = sim.trading.account_id(KEY)
    return sim.trading.engine.all_orders(account, FUT, SYMBOL)


class WeightWatch:
    """Samples the simulator's request-weight counter of a market; keeps the highest value seen."""

    def __init__(self, sim: MarketSimulator, market: Market = FUT, interval_s: float = 0.005) -> None:
        self.sim = sim
        self.market = market
        self.interval_s = interval_s
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, self.sim.state.weights[self.market].used)
            await asyncio.sleep(self.interval_s)

    def __enter__(self) -> WeightWatch:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        self.peak = max(self.peak, self.sim.state.weights[self.market].used)
        if self._task is not None:
            self._task.cancel()


async def stop_when(condition: Callable[[], bool], stop: Callable[[], None], timeout_s: float) -> bool:
    """Call `stop` once `condition()` holds (True) or after `timeout_s` (False)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    try:
        while loop.time() < deadline:
            if condition():
                return True
            await asyncio.sleep(0.05)
        return False
    finally:
        stop()
