"""R-EX-6 through the node: an order refused for want of margin moves money from spot, within caps."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from kestrel.config.loading import load_config
from kestrel.core.clock import TimeEvent
from kestrel.core.enums import Market, OrderStatus, OrderType, Side
from kestrel.core.venue import BookView, OrderRequest, OrderUpdate
from kestrel.node import TradingNode
from kestrel.storage.ledger import Ledger
from kestrel.strategy.base import Strategy
from tests.marketdata.simulated import simulator, venue_overrides


class BuyTwice(Strategy):
    """A futures buy bigger than the futures wallet; after its refusal, the same buy once more."""

    name = "buy_twice"
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        super().__init__({})
        self.request: OrderRequest | None = None
        self.updates: list[OrderUpdate] = []
        self.retried = False

    def on_book(self, book: BookView) -> None:
        if self.request is not None or book.best_ask_price is None:
            return
        instrument = self.instrument(Market.FUTURES, book.symbol)
        quantity = instrument.quantity_for_notional(Decimal(1_000), book.best_ask_price, OrderType.MARKET)
        self.request = OrderRequest(Market.FUTURES, book.symbol, Side.BUY, OrderType.MARKET, quantity=quantity)
        self.submit_order(self.request)

    def on_order_update(self, update: OrderUpdate) -> None:
        self.updates.append(update)
        if update.order.status is OrderStatus.REJECTED and not self.retried and self.request is not None:
            self.retried = True
            self.set_timer("retry", 500_000_000)  # the transfer is under way meanwhile

    def on_timer(self, event: TimeEvent) -> None:
        self.clock.cancel_timer("retry")
        if self.request is not None:
            self.submit_order(self.request)


async def test_a_margin_refusal_tops_up_the_futures_wallet_within_caps(shared_data: Path, tmp_path: Path) -> None:
    async with simulator(shared_data, symbols=["BTCUSDT"], markets=(Market.FUTURES,)) as sim:
        config = load_config(
            None,
            overrides={
                "environment": "dev", "venue": venue_overrides(sim),
                "data": {"ingest": {"markets": ["futures"], "symbols": ["BTCUSDT"],
                                    "streams": ["depth@100ms", "aggTrade", "markPrice"]}},
                "storage": {"ledger_url": f"sqlite:///{tmp_path / 'ledger.sqlite'}", "data_dir": str(tmp_path)},
                "backtest": {"spot_balances": {"USDT": "5000"}, "futures_balances": {"USDT": "20"}},
                "execution": {"transfers_enabled": True, "transfer_max_usdt": 400, "transfer_min_reserve_usdt": 50},
                "risk": {"leverage": 5},
            },
            env_file=None,
        )  # fmt: skip
        strategy = BuyTwice()
        node = TradingNode(config, strategy, mode="paper")
        summary = await node.run(duration_s=4.0)
    statuses = [u.order.status for u in strategy.updates]
    refused = next(u for u in strategy.updates if u.order.status is OrderStatus.REJECTED)
    assert refused.code == -2019  # the engine's "Margin is insufficient.", as the exchange says it
    assert OrderStatus.FILLED in statuses and summary.fills >= 1  # the retry after the top-up filled
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    transfers = ledger.transfers()
    assert len(transfers) == 1  # one refusal, one transfer: no loop
    row = transfers[0]
    assert (row["status"], row["source"], row["target"], row["asset"]) == ("CONFIRMED", "spot", "futures", "USDT")
    assert Decimal(200) < row["amount"] <= Decimal(400)  # ~1 000 / 5 × 1.1, under the per-transfer cap
    assert ledger.audit_events("transfer")[0]["detail"]["status"] == "CONFIRMED"
