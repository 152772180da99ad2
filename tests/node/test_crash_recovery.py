"""The reconciler at the node's start, against the simulator over real sockets: orders and a position
the ledger does not know (left by another session: a crash before the ledger write, a manual order)
are adopted or cancelled / closed as the orphan policy says, each fix is audited with its outcome, and
a second start finds nothing left to correct (the corrections are idempotent)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest

from kestrel.binance.venue import BinanceVenue
from kestrel.binance.venue_settings import BinanceVenueSettings
from kestrel.config.loading import load_config
from kestrel.config.models import KestrelConfig
from kestrel.core.clock import LiveClock
from kestrel.core.enums import Market, OrderStatus, OrderType, Side, TimeInForce
from kestrel.core.identifiers import ClientOrderId, client_order_id
from kestrel.core.venue import BookView, OrderRequest
from kestrel.node import TradingNode, VenueKind
from kestrel.sim import MarketSimulator, SimulatorOptions
from kestrel.sim.trading.options import SimAccount, TradingOptions
from kestrel.storage.ledger import Ledger
from kestrel.strategy.base import Strategy
from tests.marketdata.simulated import until, venue_overrides
from tests.node.test_binance_node import KEY, SECRET, Idle

SYMBOL = "BTCUSDT"


def policy_config(sim: MarketSimulator, tmp_path: Path, policy: str, ledger: str = "ledger") -> KestrelConfig:
    return load_config(
        None,
        overrides={
            "environment": "dev", "venue": {**venue_overrides(sim), "api_key": KEY, "api_secret": SECRET},
            "data": {"ingest": {"markets": ["futures"], "symbols": [SYMBOL], "streams": ["depth@100ms"]}},
            "storage": {"ledger_url": f"sqlite:///{tmp_path / ledger}.sqlite", "data_dir": str(tmp_path)},
            "execution": {"orphan_policy": policy},
        },
        env_file=None,
    )  # fmt: skip


class LeaveOrphans(Strategy):
    """Another session (its own ledger): a market buy, then two resting bids far below the market, one
    with our client-id scheme and one manual, all left behind when it stops."""

    name = "leave_orphans"
    defaults: ClassVar[dict[str, Any]] = {}
    ours = client_order_id("lost-intent")
    manual = ClientOrderId("manual_web_1")

    def __init__(self) -> None:
        super().__init__({})
        self.sent = False
        self.quantity = Decimal(0)

    def on_book(self, book: BookView) -> None:
        if self.sent or book.best_bid_price is None:
            return
        self.sent = True
        instrument = self.instrument(Market.FUTURES, SYMBOL)
        self.quantity = instrument.quantity_for_notional(Decimal(150), book.best_bid_price, OrderType.MARKET)
        self.submit_order(OrderRequest(Market.FUTURES, SYMBOL, Side.BUY, OrderType.MARKET, self.quantity,
                                       client_order_id=ClientOrderId("manual_market_1")))  # fmt: skip
        bid = instrument.round_price(book.best_bid_price * Decimal("0.8"))
        for cid in (self.ours, self.manual):
            self.submit_order(OrderRequest(Market.FUTURES, SYMBOL, Side.BUY, OrderType.LIMIT, self.quantity * 2,
                                           price=bid, time_in_force=TimeInForce.GTC, client_order_id=cid))  # fmt: skip


async def exchange_state(config: KestrelConfig) -> tuple[list[str], Decimal]:
    venue = BinanceVenue(BinanceVenueSettings.from_config(config.venue, markets=(Market.FUTURES,)), LiveClock())
    await venue.start()
    try:
        snapshot = await venue.reconcile_snapshot()
    finally:
        await venue.stop()
    position = sum((p.quantity for p in snapshot.positions if p.symbol == SYMBOL), Decimal(0))
    return sorted(o.client_order_id for o in snapshot.open_orders), position


@pytest.mark.parametrize("policy", ["RECLAIM_IF_SAFE", "CONSERVATIVE"])
async def test_orphan_policy_at_start_and_idempotent_restart(shared_data: Path, tmp_path: Path, policy: str) -> None:
    options = SimulatorOptions(
        markets=(Market.FUTURES,), symbols=[SYMBOL], seed=5, data_dir=shared_data,
        trading=TradingOptions(accounts=[SimAccount(name="node", api_key=KEY, api_secret=SECRET,
                                                    futures={"USDT": Decimal(10_000)})]),
    )  # fmt: skip
    async with MarketSimulator(options) as sim:
        config = policy_config(sim, tmp_path, policy)
        other = LeaveOrphans()
        await TradingNode(policy_config(sim, tmp_path, policy, "other"), other, mode="paper",
                          venue_kind=VenueKind.BINANCE).run(duration_s=2.0)  # fmt: skip
        assert other.sent
        orphans = {"ours": other.ours, "manual": other.manual, "position": other.quantity}
        node = TradingNode(config, Idle(), mode="paper", venue_kind=VenueKind.BINANCE)
        await node.run(duration_s=2.0)
        assert node.reconcile_report is not None
        fixes = {(c.fix.value, c.subject) for c in node.reconcile_report.corrections}
        open_orders, position = await exchange_state(config)
        ledger = Ledger(config.storage.ledger_url)
        try:
            audited = {(e["detail"]["fix"], e["subject"]): e["detail"] for e in ledger.audit_events("reconcile.fix")}
            assert set(audited) == fixes and all(d["outcome"] == "applied" for d in audited.values())
            ledger_orders = {o.client_order_id: o for o in ledger.orders()}
            ledger_position = sum((p.quantity for p in ledger.positions() if p.symbol == SYMBOL), Decimal(0))
            # either way, every order on the exchange is now in the ledger
            assert {orphans["ours"], orphans["manual"]} <= set(ledger_orders), (fixes, open_orders, position)
            if policy == "RECLAIM_IF_SAFE":
                assert fixes == {("adopt_order", orphans["ours"]), ("cancel_order", orphans["manual"]),
                                 ("adopt_position", SYMBOL)}  # fmt: skip
                assert open_orders == [orphans["ours"]] and position == orphans["position"]
                assert ledger_orders[orphans["ours"]].status is OrderStatus.NEW
            else:
                assert fixes == {("cancel_order", orphans["ours"]), ("cancel_order", orphans["manual"]),
                                 ("close_position", SYMBOL)}  # fmt: skip
                assert open_orders == [] and position == 0
                assert ledger_orders[orphans["ours"]].status is OrderStatus.CANCELED
                closing = [o for o in ledger_orders.values() if o.intent_id == f"reconcile-close-{SYMBOL}"]
                assert [(o.side, o.status, o.reduce_only) for o in closing] == [(Side.SELL, OrderStatus.FILLED, True)]
            assert ledger_orders[orphans["manual"]].status is OrderStatus.CANCELED
            assert ledger_position == position
        finally:
            ledger.close()
        # a second start: the ledger already equals the exchange, nothing to correct
        again = TradingNode(config, Idle(), mode="paper", venue_kind=VenueKind.BINANCE)
        await again.run(duration_s=0.5)
        assert again.reconcile_report is not None and again.reconcile_report.clean


async def test_periodic_and_alert_reconcile_while_trading(shared_data: Path, tmp_path: Path) -> None:
    """A manual order appears on the account while the node runs (the guard records it from the user
    stream): the next periodic pass cancels it, as not ours; an order whose outcome is unknown (503
    after it was placed) raises an alert that reconciles at once, leaving that order to the venue."""
    options = SimulatorOptions(
        markets=(Market.FUTURES,), symbols=[SYMBOL], seed=9, data_dir=shared_data,
        trading=TradingOptions(accounts=[SimAccount(name="node", api_key=KEY, api_secret=SECRET,
                                                    futures={"USDT": Decimal(10_000)})]),
    )  # fmt: skip
    async with MarketSimulator(options) as sim:
        config = policy_config(sim, tmp_path, "RECLAIM_IF_SAFE")
        config = config.model_copy(
            update={"execution": config.execution.model_copy(update={"reconcile_interval_s": 1.0})}
        )
        node = TradingNode(config, Idle(), mode="paper", venue_kind=VenueKind.BINANCE)
        running = asyncio.create_task(node.run(duration_s=8.0))
        await until(lambda: node.reconciler is not None and node.reconciler.runs >= 2, 20.0, "a periodic pass")
        book = node.books[(Market.FUTURES, SYMBOL)]
        assert book.best_bid_price is not None
        instrument = node.instruments[(Market.FUTURES, SYMBOL)]
        manual = ClientOrderId("manual_web_2")
        other = BinanceVenue(BinanceVenueSettings.from_config(config.venue, markets=(Market.FUTURES,)), LiveClock())
        await other.start()
        try:
            quantity = instrument.quantity_for_notional(Decimal(300), book.best_bid_price)
            bid = instrument.round_price(book.best_bid_price * Decimal("0.8"))
            other.submit_order(OrderRequest(Market.FUTURES, SYMBOL, Side.BUY, OrderType.LIMIT, quantity, price=bid,
                                            time_in_force=TimeInForce.GTC, client_order_id=manual))  # fmt: skip
            await other.drain(10)
        finally:
            await other.stop()
        assert node.binance is not None
        await until(lambda: node.ledger is not None and node.ledger.get_order(manual) is not None, 10.0, "the fix")
        await until(lambda: not node.binance.open_orders(Market.FUTURES) if node.binance else False, 10.0, "cancel")
        alerts = node.reconciler.alerts if node.reconciler else 0
        assert sim.trading is not None and node.venue is not None
        sim.trading.fail_next_orders(1, placed=True, status=503)  # placed, but the answer is lost
        ours = node.venue.submit_order(OrderRequest(Market.FUTURES, SYMBOL, Side.BUY, OrderType.LIMIT, quantity,
                                                    price=bid, time_in_force=TimeInForce.GTC))  # fmt: skip
        await until(lambda: node.reconciler is not None and node.reconciler.alerts > alerts, 15.0, "the alert")
        await until(lambda: node.ledger is not None and node.ledger.get_order(ours).status is OrderStatus.NEW, 15.0,
                    "the unknown outcome resolved")  # fmt: skip
        await running
    ledger = Ledger(config.storage.ledger_url)
    try:
        fixes = [
            (e["detail"]["fix"], e["subject"], e["detail"]["outcome"]) for e in ledger.audit_events("reconcile.fix")
        ]
        assert fixes == [("cancel_order", manual, "applied")]
        order = ledger.get_order(manual)
        assert order is not None and order.status is OrderStatus.CANCELED
        runs = [e["detail"]["at_start"] for e in ledger.audit_events("reconcile.run")]
        assert runs[0] is True and runs.count(False) >= 3  # at start, then every second
        assert ledger.audit_events("reconcile.alert")
    finally:
        ledger.close()
