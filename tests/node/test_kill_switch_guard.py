"""The guard's side of the kill switch, step by step on a simulated clock (the node tests run it over
real sockets): equity marked to market trips it, a missing mark does not, the sweep goes on until flat."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from kestrel.config.models import RiskConfig
from kestrel.core.clock import SimClock
from kestrel.core.enums import Market, Side
from kestrel.core.identifiers import ClientOrderId
from kestrel.core.venue import OrderRequest
from kestrel.execution.guard import EQUITY_CHECK_INTERVAL_NS, GuardedVenue
from kestrel.matching.venue import SimVenue
from kestrel.risk import RiskEngine
from kestrel.storage.ledger import Ledger
from tests.matching.helpers import FUT, SPOT, engine, limit, market_order, snapshot

D = Decimal
SYMBOL = "BTCUSDT"


class Marks:
    """The node's mark source, set by hand."""

    def __init__(self) -> None:
        self.prices: dict[tuple[Market, str], Decimal] = {(FUT, SYMBOL): D(100)}

    def __call__(self, market: Market, symbol: str) -> Decimal | None:
        return self.prices.get((market, symbol))


def build(tmp_path: Path) -> tuple[GuardedVenue, SimVenue, RiskEngine, SimClock, Marks]:
    matching = engine(futures_usdt=D(1000), spot_usdt=D(0), spot_btc=D(0))
    matching.apply(snapshot(FUT))
    clock = SimClock(10_000)
    inner = SimVenue(matching, "a", clock)
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    ledger.migrate()
    risk = RiskEngine(RiskConfig(leverage=5, kill_switch_drawdown_pct=1.0), D(1000), 0)
    marks = Marks()
    guard = GuardedVenue(inner, clock, ledger, risk, id_prefix="k", leverage=5, mark_of=marks)
    return guard, inner, risk, clock, marks


def settle(inner: SimVenue, clock: SimClock, seconds: float = 0.5) -> None:
    """Let the clock run (timers fire) and every venue delivery arrive."""
    end = clock.timestamp_ns() + int(seconds * 1e9)
    while clock.timestamp_ns() < end:
        clock.advance_to(clock.timestamp_ns() + EQUITY_CHECK_INTERVAL_NS // 4)
        while (due := inner.next_due_ns()) is not None:
            inner.process_due(due)


def test_a_price_move_trips_the_kill_switch_and_the_sweep_flattens(tmp_path: Path) -> None:
    guard, inner, risk, clock, marks = build(tmp_path)
    guard.submit_order(limit(Side.BUY, "1", "99.0"))
    guard.submit_order(market_order(Side.BUY, "5"))
    settle(inner, clock)
    assert [p.quantity for p in inner.positions()] == [D(5)] and len(inner.open_orders()) == 1
    assert not risk.kill_switch_engaged  # the fee and the spread alone stay under 1 %
    marks.prices[(FUT, SYMBOL)] = D("97.5")  # 5 × 2.6 against the position: -1.3 % of 1000
    settle(inner, clock)
    assert risk.kill_switch_engaged and guard.kill_reason is not None
    assert guard.kill_reason.startswith("automatic: drawdown")
    assert inner.open_orders() == [] and inner.positions() == []
    refused = guard.submit_order(market_order(Side.BUY, "1"))  # no new exposure while killed
    assert guard.rejections and guard.rejections[-1].order.client_order_id == refused


def test_a_mark_that_goes_missing_is_not_a_loss(tmp_path: Path) -> None:
    matching = engine(futures_usdt=D(1000), spot_usdt=D(0), spot_btc=D(1))
    matching.apply(snapshot(FUT))
    clock = SimClock(10_000)
    inner = SimVenue(matching, "a", clock)
    risk = RiskEngine(RiskConfig(leverage=5, kill_switch_drawdown_pct=1.0), D(1100), 0)
    marks = Marks()
    marks.prices[(SPOT, SYMBOL)] = D(100)  # 1 spot BTC worth 100
    guard = GuardedVenue(inner, clock, None, risk, leverage=5, mark_of=marks)
    settle(inner, clock)
    assert guard.equity() == D(1100)
    del marks.prices[(SPOT, SYMBOL)]  # the spot book is resyncing: no mark for a while
    settle(inner, clock)
    assert guard.equity() == D(1100) and not risk.kill_switch_engaged  # not a 9 % loss


def test_a_manual_kill_keeps_sweeping_until_flat(tmp_path: Path) -> None:
    guard, inner, risk, clock, _ = build(tmp_path)
    guard.submit_order(market_order(Side.BUY, "2"))
    settle(inner, clock)
    # still in flight (order latency) when the kill comes: cancelled all the same
    guard.submit_order(limit(Side.BUY, "1", "99.0"))
    guard.submit_order(limit(Side.BUY, "1", "98.0"))
    sent = guard.kill("manual: test")
    assert sent == 3 and risk.kill_switch_engaged  # two cancels and one close
    settle(inner, clock, seconds=1.0)
    assert inner.open_orders() == [] and inner.positions() == []


class LossyVenue(SimVenue):
    """Loses the first cancel and the first reduce-only order it is given (never answered)."""

    lost_cancel = False
    lost_close = False

    def cancel_order(self, market: Market, symbol: str, client_order_id: ClientOrderId) -> None:
        if not self.lost_cancel:
            self.lost_cancel = True
            return
        super().cancel_order(market, symbol, client_order_id)

    def submit_order(self, request: OrderRequest) -> ClientOrderId:
        if request.reduce_only and not self.lost_close:
            self.lost_close = True
            assert request.client_order_id is not None
            return request.client_order_id
        return super().submit_order(request)


def test_the_sweep_sends_again_what_was_lost(tmp_path: Path) -> None:
    matching = engine(futures_usdt=D(1000), spot_usdt=D(0), spot_btc=D(0))
    matching.apply(snapshot(FUT))
    clock = SimClock(10_000)
    inner = LossyVenue(matching, "a", clock)
    guard = GuardedVenue(inner, clock, None, RiskEngine(RiskConfig(leverage=5), D(1000), 0), leverage=5)
    guard.submit_order(limit(Side.BUY, "1", "99.0"))
    guard.submit_order(market_order(Side.BUY, "2"))
    settle(inner, clock)
    guard.kill("manual: test")
    settle(inner, clock, seconds=0.5)
    assert inner.lost_cancel and inner.lost_close
    assert len(inner.open_orders()) == 1 and len(inner.positions()) == 1  # nothing answered yet
    settle(inner, clock, seconds=1.5)  # past the resend delay: both sent again
    assert inner.open_orders() == [] and inner.positions() == []
