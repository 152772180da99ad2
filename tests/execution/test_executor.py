"""The executor over the real SimVenue and matching engine: maker at the touch, taker fallback after the
wait, TWAP slices and the liquidity probe on clock timers, idempotent ids, slippage into the ledger."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import pytest

from kestrel.config.models import ExecutionConfig, RiskConfig, RoutingBucket
from kestrel.core.clock import SimClock
from kestrel.core.enums import OrderStatus, OrderType, Side, TimeInForce
from kestrel.core.events import Trade
from kestrel.core.identifiers import IntentId, StrategyId, client_order_id
from kestrel.core.orders import Intent
from kestrel.core.venue import OrderUpdate, Venue, VenueEvent
from kestrel.execution.executor import Executor, IntentExecution, Leg
from kestrel.execution.guard import GuardedVenue
from kestrel.matching.engine import MatchingEngine
from kestrel.matching.venue import SimVenue
from kestrel.risk import RiskEngine
from kestrel.storage.ledger import Ledger
from tests.matching.helpers import FUT, FUTURES_BTC, engine, snapshot

D = Decimal
MS = 1_000_000
T0 = 1_000_000_000
KEY = (FUT, "BTCUSDT")
ROUTING = [
    RoutingBucket(min_notional_usdt=0, maker_wait_ms=1000, slices=1, slice_interval_ms=0),
    RoutingBucket(min_notional_usdt=50, maker_wait_ms=1000, slices=3, slice_interval_ms=500),
]


class Harness:
    def __init__(self, ledger: Ledger | None = None, **config: object) -> None:
        self.matching: MatchingEngine = engine()
        self.matching.apply(snapshot(FUT, ts=T0 - 1))
        self.clock = SimClock(T0)
        self.sim = SimVenue(self.matching, "a", self.clock)
        venue: Venue = self.sim
        if ledger is not None:
            risk = RiskEngine(RiskConfig(), D(100_000), T0)
            venue = GuardedVenue(self.sim, self.clock, ledger, risk, id_prefix="t", leverage=10)
        self.updates: list[OrderUpdate] = []
        self.done: list[IntentExecution] = []
        execution = ExecutionConfig(**{"routing": ROUTING, "maker_fill_ratio_min": 0.5, **config})  # type: ignore[arg-type]
        self.executor = Executor(
            venue, self.clock, execution, {KEY: FUTURES_BTC}, {KEY: self.matching.book(FUT, "BTCUSDT")},
            random.Random(3), on_done=self.done.append,
        )  # fmt: skip
        venue.set_event_handler(self._on_event)

    def _on_event(self, event: VenueEvent) -> None:
        if isinstance(event, OrderUpdate):
            self.updates.append(event)
            self.executor.on_order_update(event)

    def run_until(self, until_ns: int) -> None:
        """Deliver venue arrivals and fire timers in time order up to `until_ns`."""
        while True:
            due = [t for t in (self.sim.next_due_ns(), self.clock.next_timer_ns()) if t is not None and t <= until_ns]
            if not due:
                break
            moment = min(due)
            self.clock.advance_to(max(moment, self.clock.timestamp_ns()))
            self.sim.process_due(moment)
        self.clock.advance_to(max(until_ns, self.clock.timestamp_ns()))

    def trade(self, price: float, quantity: float, buyer_is_maker: bool) -> None:
        now = self.clock.timestamp_ns()
        self.sim.on_engine_events(
            self.matching.apply(Trade(FUT, "BTCUSDT", 1, price, quantity, buyer_is_maker, now, now))
        )


def intent(quantity: str, side: Side = Side.BUY, price: str = "100.0", name: str = "i-1") -> Intent:
    return Intent(IntentId(name), StrategyId("t"), FUT, "BTCUSDT", side, D(quantity), T0, OrderType.LIMIT, D(price))


def test_a_maker_slice_rests_post_only_at_the_touch_and_its_fill_has_a_slippage() -> None:
    h = Harness()
    execution = h.executor.execute(intent("0.2"))
    h.run_until(T0 + 10 * MS)
    (record,) = execution.orders
    assert record.client_order_id == client_order_id("i-1", "m0", 0) and record.leg is Leg.MAKER
    order = h.sim.order(FUT, "BTCUSDT", record.client_order_id)
    assert order is not None and order.status is OrderStatus.NEW
    assert order.price == D("100.0") and order.time_in_force is TimeInForce.GTX  # the best bid, post-only
    h.trade(100.0, 5.0, buyer_is_maker=True)  # a seller takes the whole bid level, our order included
    h.run_until(T0 + 20 * MS)
    assert record.status is OrderStatus.FILLED and record.filled == D("0.2")
    assert execution.done and h.done == [execution]
    assert record.slip_bps == pytest.approx((100.0 - 100.05) / 100.05 * 1e4)  # bought below the mid
    assert h.executor.stats.maker_fill_ratio(h.clock.timestamp_ns()) == 1.0
    assert h.executor.execute(intent("0.2")) is execution  # the same intent again: nothing new is sent
    assert len(execution.orders) == 1


def test_an_unfilled_maker_is_cancelled_after_its_wait_and_the_remainder_goes_taker() -> None:
    h = Harness()
    execution = h.executor.execute(intent("0.2"))
    h.run_until(T0 + 999 * MS)
    assert [o.leg for o in execution.orders] == [Leg.MAKER]  # still waiting: no timer has fired yet
    h.run_until(T0 + 1100 * MS)
    maker, taker = execution.orders
    assert maker.status is OrderStatus.CANCELED and maker.filled == 0
    assert taker.leg is Leg.TAKER and taker.client_order_id == client_order_id("i-1", "t0", 0)
    assert taker.ts_sent_ns >= T0 + 1000 * MS and taker.quantity == D("0.2")
    assert taker.status is OrderStatus.FILLED and taker.vwap == D("100.1")
    assert taker.slip_bps == pytest.approx((100.1 - 100.05) / 100.05 * 1e4)
    assert execution.done and execution.filled == D("0.2")
    assert h.executor.stats.maker_fill_ratio(h.clock.timestamp_ns()) == 0.0


def test_a_well_filled_intent_does_not_chase_the_remainder() -> None:
    h = Harness(maker_fill_ratio_min=0.3)
    execution = h.executor.execute(intent("0.2"))
    h.run_until(T0 + 10 * MS)
    h.trade(100.0, 1.1, buyer_is_maker=True)  # the 1.0 ahead of us, then 0.1 of our 0.2: ratio 0.5 ≥ θ
    h.run_until(T0 + 1100 * MS)
    (maker,) = execution.orders
    assert maker.filled == D("0.1") and maker.status is OrderStatus.CANCELED
    assert execution.done and execution.filled == D("0.1")


def test_twap_slices_are_sent_by_clock_timers_at_their_jittered_delays() -> None:
    h = Harness()
    execution = h.executor.execute(intent("0.9"))  # 90 USDT: the three-slice bucket
    plan = execution.plan
    assert [s.quantity for s in plan.slices] == [D("0.3")] * 3
    assert len(execution.orders) == 1  # only the first slice is due at once
    h.run_until(T0 + plan.slices[1].delay_ms * MS - 1)
    assert len(execution.orders) == 1
    h.run_until(T0 + plan.slices[2].delay_ms * MS)
    makers = [o for o in execution.orders if o.leg is Leg.MAKER]
    assert [o.ts_sent_ns - T0 for o in makers] == [s.delay_ms * MS for s in plan.slices]
    assert [o.client_order_id for o in makers] == [client_order_id("i-1", f"m{i}", 0) for i in range(3)]
    gaps = [b.delay_ms - a.delay_ms for a, b in zip(plan.slices, plan.slices[1:], strict=False)]
    assert all(450 <= gap <= 550 for gap in gaps)  # 500 ms ± 10 % seeded jitter


def test_the_liquidity_probe_delays_the_first_slice_when_the_spread_is_wide() -> None:
    h = Harness(liquidity_probe_wait_ms=2000)
    execution = h.executor.execute(intent("0.2"), spread_bps=10.0, mean_spread_bps_1h=2.0)
    assert execution.plan.start_delay_ms == 2000 and execution.orders == []
    h.run_until(T0 + 1999 * MS)
    assert execution.orders == []
    h.run_until(T0 + 2000 * MS)
    assert execution.orders and execution.orders[0].ts_sent_ns == T0 + 2000 * MS


def test_cancelling_an_intent_stops_its_later_slices_and_its_fallbacks() -> None:
    h = Harness()
    execution = h.executor.execute(intent("0.9"))
    h.run_until(T0 + 10 * MS)
    h.executor.cancel("i-1")
    h.run_until(T0 + 5000 * MS)
    assert [o.leg for o in execution.orders] == [Leg.MAKER]
    assert execution.orders[0].status is OrderStatus.CANCELED and execution.done
    assert h.sim.open_orders() == []


def test_an_exit_is_one_reduce_only_taker_order(tmp_path: Path) -> None:
    h = Harness()
    h.executor.execute(intent("0.2"))
    h.run_until(T0 + 1100 * MS)  # long 0.2 after the taker fallback
    exit_intent = Intent(IntentId("i-1-x1"), StrategyId("t"), FUT, "BTCUSDT", Side.SELL, D("0.2"), T0, OrderType.MARKET,
                         reduce_only=True)  # fmt: skip
    execution = h.executor.execute_exit(exit_intent)
    h.run_until(T0 + 1200 * MS)
    (record,) = execution.orders
    order = h.sim.order(FUT, "BTCUSDT", record.client_order_id)
    assert order is not None and order.reduce_only and order.order_type is OrderType.MARKET
    assert record.status is OrderStatus.FILLED and h.sim.position("BTCUSDT") == 0


def test_orders_belong_to_their_intent_in_the_ledger_and_slippage_is_audited(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    ledger.migrate()
    h = Harness(ledger=ledger)
    execution = h.executor.execute(intent("0.2"))
    h.run_until(T0 + 1100 * MS)
    assert execution.done and ledger.intent_states() == {"i-1": "ACTIVE"}
    assert {o.client_order_id for o in ledger.orders("i-1")} == {o.client_order_id for o in execution.orders}
    (audit,) = ledger.audit_events("execution.slip")
    taker = execution.orders[1]
    assert audit["detail"]["client_order_id"] == taker.client_order_id
    assert audit["detail"]["slip_bps"] == pytest.approx(taker.slip_bps)
    ledger.close()


def test_a_post_only_order_that_would_take_falls_back_at_once() -> None:
    from tests.matching.helpers import depth

    h = Harness()
    execution = h.executor.execute(intent("0.2"))  # a post-only bid at 100.0 on its way
    # before it arrives the bid level goes and the ask comes down to 100.0: the bid would now take
    h.sim.on_engine_events(h.matching.apply(depth([(100.0, 0.0)], [(100.0, 1.0)], T0, 101, 101, 100)))
    h.run_until(T0 + 10 * MS)
    maker, taker = execution.orders
    assert maker.status in (OrderStatus.EXPIRED, OrderStatus.REJECTED) and maker.filled == 0
    assert taker.leg is Leg.TAKER and taker.ts_sent_ns < T0 + 1000 * MS  # no maker wait for a refused maker
    assert taker.status is OrderStatus.FILLED and execution.done


def test_after_the_final_flush_every_ledger_row_is_written_at_once(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    ledger.migrate()
    h = Harness(ledger=ledger)
    h.executor.execute(intent("0.2"))
    assert ledger.intent_states() == {}  # queued for a clock tick later while trading
    h.executor.flush_ledger(final=True)  # the strategy stops; the venue may still deliver events
    assert ledger.intent_states() == {"i-1": "PENDING_ENTRY"}
    h.executor.defer_ledger_write(lambda l: l.audit("late", {"n": 1}, T0))  # noqa: E741
    assert ledger.audit_events("late")  # written now: no clock tick will come to flush it
    ledger.close()
