"""GuardedVenue over the real SimVenue: ledger first, risk rejections as events, kill switch."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from kestrel.config.models import RiskConfig
from kestrel.core.clock import SimClock
from kestrel.core.enums import Market, OrderStatus, Side
from kestrel.core.venue import ExecutionType, OrderUpdate, VenueEvent
from kestrel.execution.guard import GuardedVenue
from kestrel.matching.venue import SimVenue
from kestrel.risk import RiskEngine
from kestrel.storage.ledger import Ledger
from tests.matching.helpers import FUT, engine, limit, market_order, snapshot

D = Decimal


def build(tmp_path: Path, **risk: object):  # type: ignore[no-untyped-def]
    matching = engine()
    matching.apply(snapshot(FUT))
    clock = SimClock(10_000)
    inner = SimVenue(matching, "a", clock)
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    ledger.migrate()
    config = RiskConfig(**{"leverage": 5, "max_leverage": 10, **risk})  # type: ignore[arg-type]
    risk_engine = RiskEngine(config, D(100_000), 0)
    guard = GuardedVenue(inner, clock, ledger, risk_engine, id_prefix="t", leverage=5)
    received: list[VenueEvent] = []
    guard.set_event_handler(received.append)
    return guard, inner, ledger, risk_engine, clock, received


def drain(inner: SimVenue) -> None:
    while (due := inner.next_due_ns()) is not None:
        inner.process_due(due)


def test_orders_reach_the_ledger_before_the_venue(tmp_path: Path) -> None:
    guard, inner, ledger, _, _, received = build(tmp_path)
    cid = guard.submit_order(limit(Side.BUY, "0.5", "99.9"))
    stored = ledger.get_order(cid)
    assert stored is not None and stored.status is OrderStatus.SUBMITTED  # written before any answer
    assert cid.startswith("kst")  # deterministic, Binance-valid id
    filled = guard.submit_order(market_order(Side.BUY, "0.2"))
    drain(inner)
    assert ledger.get_order(cid).status is OrderStatus.NEW  # type: ignore[union-attr]
    fills = ledger.fills(filled)
    assert len(fills) == 1 and fills[0].quantity == D("0.2")
    assert [s for s, _ in ledger.order_history(filled)][-1] == "FILLED"
    assert ledger.positions()[0].quantity == D("0.2")
    assert any(isinstance(e, OrderUpdate) and e.fill is not None for e in received)


def test_risk_refusal_is_an_event_and_is_audited(tmp_path: Path) -> None:
    guard, inner, ledger, _, _, received = build(tmp_path, max_capital_in_use_pct=1.0)
    cid = guard.submit_order(limit(Side.BUY, "500", "100.0"))  # 50 000 notional / 5 = 10 000 margin > 1 000
    assert inner.open_orders() == [] and ledger.get_order(cid) is None  # never sent, never recorded as sent
    update = received[-1]
    assert isinstance(update, OrderUpdate) and update.execution_type is ExecutionType.REJECTED
    assert update.reason is not None and update.reason.startswith("risk: capital_in_use")
    assert ledger.audit_events("risk.rejection")[0]["detail"]["rule"] == "capital_in_use"
    closing = guard.submit_order(market_order(Side.SELL, "0.1", reduce_only=True))
    drain(inner)
    assert ledger.get_order(closing) is not None  # reduce-only always passes the guard


def test_kill_switch_cancels_everything_and_flattens(tmp_path: Path) -> None:
    guard, inner, ledger, risk, _, _ = build(tmp_path)
    guard.submit_order(market_order(Side.BUY, "0.3"))
    guard.submit_order(limit(Side.BUY, "0.1", "99.0"))
    guard.submit_order(limit(Side.SELL, "0.1", "101.0"))
    drain(inner)
    assert len(inner.open_orders()) == 2 and inner.position("BTCUSDT") == D("0.3")
    assert guard.kill("test") == 3
    drain(inner)
    assert inner.open_orders() == [] and inner.position("BTCUSDT") == 0
    assert risk.kill_switch_engaged and ledger.audit_events("kill_switch")[0]["detail"] == {"reason": "test"}
    refused = guard.submit_order(limit(Side.BUY, "0.1", "99.0"))
    assert ledger.get_order(refused) is None  # no new exposure after the kill
    assert guard.rejections[-1].reason is not None and "kill_switch" in guard.rejections[-1].reason
    assert Market.FUTURES in {p.market for p in ledger.positions()}
