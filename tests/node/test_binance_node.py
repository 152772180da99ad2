"""The node on the Binance venue (REST + user data streams) against the simulator over real sockets;
a restart reconciles the ledger with the exchange before trading."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from kestrel.config.loading import load_config
from kestrel.core.enums import Market, OrderStatus, OrderType, Side, TimeInForce
from kestrel.core.venue import BookView, OrderRequest, OrderUpdate
from kestrel.node import TradingNode, VenueKind
from kestrel.sim import MarketSimulator, SimulatorOptions
from kestrel.sim.trading.options import SimAccount, TradingOptions
from kestrel.storage.ledger import Ledger
from kestrel.strategy.base import Strategy
from tests.marketdata.simulated import venue_overrides

KEY = "NodeTestKey0123456789"
SECRET = "NodeTestSecret0123456789abcdef"


class BuyAndRest(Strategy):
    """One market buy and one resting bid far below the market, once."""

    name = "buy_and_rest"
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        super().__init__({})
        self.sent = False
        self.updates: list[OrderUpdate] = []

    def on_book(self, book: BookView) -> None:
        if self.sent or book.best_bid_price is None or book.symbol != "BTCUSDT":
            return
        self.sent = True
        market = Market.FUTURES
        instrument = self.instrument(market, book.symbol)
        quantity = instrument.quantity_for_notional(Decimal(150), book.best_bid_price, OrderType.MARKET)
        self.submit_order(OrderRequest(market, book.symbol, Side.BUY, OrderType.MARKET, quantity=quantity))
        bid = instrument.round_price(book.best_bid_price * Decimal("0.9"))
        self.submit_order(OrderRequest(market, book.symbol, Side.BUY, OrderType.LIMIT, quantity=quantity, price=bid,
                                       time_in_force=TimeInForce.GTC))  # fmt: skip

    def on_order_update(self, update: OrderUpdate) -> None:
        self.updates.append(update)


class Idle(Strategy):
    name = "idle"
    defaults: ClassVar[dict[str, Any]] = {}


def node_config(sim: MarketSimulator, tmp_path: Path) -> Any:
    return load_config(
        None,
        overrides={
            "environment": "dev", "venue": {**venue_overrides(sim), "api_key": KEY, "api_secret": SECRET},
            "data": {"ingest": {"markets": ["futures"], "symbols": ["BTCUSDT"],
                                "streams": ["depth@100ms", "aggTrade"]}},
            "storage": {"ledger_url": f"sqlite:///{tmp_path / 'ledger.sqlite'}", "data_dir": str(tmp_path)},
        },
        env_file=None,
    )  # fmt: skip


async def test_node_trades_through_the_binance_protocol_and_restarts_clean(shared_data: Path, tmp_path: Path) -> None:
    options = SimulatorOptions(
        markets=(Market.FUTURES,), symbols=["BTCUSDT"], seed=3, data_dir=shared_data,
        trading=TradingOptions(accounts=[SimAccount(name="node", api_key=KEY, api_secret=SECRET)]),
    )  # fmt: skip
    async with MarketSimulator(options) as sim:
        config = node_config(sim, tmp_path)
        strategy = BuyAndRest()
        first = await TradingNode(config, strategy, mode="paper", venue_kind=VenueKind.BINANCE).run(duration_s=4.0)
        assert strategy.sent and first.fills >= 1 and first.rejections == 0
        assert any(u.fill is not None for u in strategy.updates)  # fills came back on the user data stream
        ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
        statuses = sorted(o.status.value for o in ledger.orders())
        assert statuses == [OrderStatus.FILLED.value, OrderStatus.NEW.value]
        assert len(ledger.fills()) == first.fills
        # restart: the resting bid is still open on the exchange and in the ledger; the position too
        node = TradingNode(config, Idle(), mode="paper", venue_kind=VenueKind.BINANCE)
        await node.run(duration_s=1.0)
        assert node.reconcile_report is not None
        fixes = [c.fix.value for c in node.reconcile_report.corrections]
        assert "order_missing" not in fixes and "cancel_order" not in fixes  # the open order is known
        assert node.binance is not None and len(node.binance.open_orders(Market.FUTURES)) == 1
