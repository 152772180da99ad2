"""The trading node in paper mode against the local simulator over real sockets."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from kestrel.config.loading import load_config
from kestrel.core.clock import TimeEvent
from kestrel.core.enums import Market, OrderStatus, OrderType, Side, TimeInForce
from kestrel.core.venue import BookView, OrderRequest, OrderUpdate
from kestrel.node import TradingNode
from kestrel.storage.ledger import Ledger
from kestrel.strategy.base import Strategy
from tests.marketdata.simulated import simulator, venue_overrides


class ScriptedStrategy(Strategy):
    """Buys at market after a few books, rests a bid below the touch, and fails once on purpose."""

    name = "scripted"
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        super().__init__({})
        self.books = 0
        self.updates: list[OrderUpdate] = []
        self.sent = False
        self.quantity = Decimal(0)

    def on_book(self, book: BookView) -> None:
        self.books += 1
        if self.books == 3:
            raise RuntimeError("a bug in user code")  # contained by the node
        if self.books >= 5 and not self.sent and book.best_bid_price is not None:
            self.sent = True
            market = Market.FUTURES
            instrument = self.instrument(market, book.symbol)
            self.quantity = instrument.quantity_for_notional(Decimal(150), book.best_bid_price, OrderType.MARKET)
            self.submit_order(OrderRequest(market, book.symbol, Side.BUY, OrderType.MARKET, quantity=self.quantity))
            bid = book.best_bid_price - 20 * instrument.tick_size
            self.submit_order(OrderRequest(market, book.symbol, Side.BUY, OrderType.LIMIT, quantity=self.quantity,
                                           price=bid, time_in_force=TimeInForce.GTC))  # fmt: skip

    def on_start(self) -> None:
        self.set_timer("boom", 300_000_000)

    def on_timer(self, event: TimeEvent) -> None:
        self.clock.cancel_timer("boom")
        raise RuntimeError("a bug in a timer callback")  # contained by the node too

    def on_order_update(self, update: OrderUpdate) -> None:
        self.updates.append(update)


async def test_paper_node_trades_on_live_data(shared_data: Path, tmp_path: Path) -> None:
    async with simulator(shared_data, symbols=["BTCUSDT"], markets=(Market.FUTURES,)) as sim:
        config = load_config(
            None,
            overrides={
                "environment": "dev", "venue": venue_overrides(sim),
                "data": {"ingest": {"markets": ["futures"], "symbols": ["BTCUSDT"],
                                    "streams": ["depth@100ms", "aggTrade", "markPrice"]}},
                "storage": {"ledger_url": f"sqlite:///{tmp_path / 'ledger.sqlite'}", "data_dir": str(tmp_path)},
            },
            env_file=None,
        )  # fmt: skip
        strategy = ScriptedStrategy()
        lines: list[str] = []
        node = TradingNode(config, strategy, mode="paper", status=lines.append, status_interval_s=0.5)
        summary = await node.run(duration_s=4.0)
    assert strategy.sent and summary.market_events > 10
    assert summary.strategy_errors == 2  # the planted exceptions (a callback, a timer) did not stop the node
    assert summary.fills >= 1 and summary.orders >= 2 and summary.rejections == 0
    assert summary.positions == {"BTCUSDT": str(strategy.quantity)}
    assert any(u.fill is not None for u in strategy.updates)
    assert lines and "orders" in lines[-1]
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    orders = ledger.orders()
    assert len(orders) == 2 and {o.status for o in orders} == {OrderStatus.FILLED, OrderStatus.NEW}
    assert len(ledger.fills()) >= 1
    assert ledger.audit_events("node.stopped")
    assert any(line.startswith("paper run of 'scripted'") for line in summary.lines())
    run_dirs = list((tmp_path / "runs").iterdir())  # the node's run record, in the backtest's format
    assert len(run_dirs) == 1 and (run_dirs[0] / "orders.csv").is_file() and (run_dirs[0] / "fills.csv").is_file()
