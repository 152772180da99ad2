from __future__ import annotations

import json
import random
from decimal import Decimal
from pathlib import Path

import pytest

from kestrel.binance.schemas.exchange_info import parse_exchange_info
from kestrel.config.models import ExecutionConfig, RoutingBucket
from kestrel.core.enums import Market, OrderType
from kestrel.core.instrument import Instrument
from kestrel.execution.quality import HOUR_NS, ExecutionStats, cost_bps, slip_bps
from kestrel.execution.routing import Style, bucket_for, needs_taker_fallback, plan_route

S = 1_000_000_000


@pytest.fixture(scope="module")
def eth(shared_data: Path) -> Instrument:
    payload = json.loads((shared_data / "exchange_info/usdm_exchangeInfo_2025-03-06_baouih.json").read_text())
    return next(i for i in parse_exchange_info(payload, Market.FUTURES) if i.symbol == "ETHUSDT")


@pytest.mark.parametrize(
    ("notional", "wait", "slices", "interval"),
    [(150, 1500, 1, 0), (200, 2000, 2, 600), (499.99, 2000, 2, 600), (700, 2500, 3, 800), (5000, 3000, 4, 1000)],
)
def test_routing_table_of_r_ex_1(notional: float, wait: int, slices: int, interval: int) -> None:
    bucket = bucket_for(notional, ExecutionConfig().routing)
    assert (bucket.maker_wait_ms, bucket.slices, bucket.slice_interval_ms) == (wait, slices, interval)


def test_twap_slices_sum_exactly_with_seeded_jitter(eth: Instrument) -> None:
    config = ExecutionConfig(twap_jitter_pct=10)
    plan = plan_route(eth, Decimal("1.237"), Decimal(2000), config, random.Random(7))
    assert len(plan.slices) == 4 and plan.quantity == Decimal("1.237")
    assert all(s.style is Style.MAKER and s.maker_wait_ms == 3000 for s in plan.slices)
    gaps = [b.delay_ms - a.delay_ms for a, b in zip(plan.slices, plan.slices[1:], strict=False)]
    assert all(900 <= gap <= 1100 for gap in gaps) and len(set(gaps)) > 1
    again = plan_route(eth, Decimal("1.237"), Decimal(2000), config, random.Random(7))
    assert again == plan  # same seed, same plan
    for piece in plan.slices:
        eth.validate(Decimal(2000), piece.quantity, OrderType.LIMIT)


def test_slices_never_break_exchange_minimums(eth: Instrument) -> None:
    # 0.011 ETH × 2000 = 22 USDT: the 20 USDT minimum allows no split
    table = [RoutingBucket(min_notional_usdt=0, maker_wait_ms=1000, slices=3, slice_interval_ms=500)]
    plan = plan_route(eth, Decimal("0.011"), Decimal(2000), ExecutionConfig(routing=table), random.Random(1))
    assert [s.quantity for s in plan.slices] == [Decimal("0.011")]
    assert any("minimums" in note for note in plan.notes)


def test_degradation_and_liquidity_probe(eth: Instrument) -> None:
    stats = ExecutionStats()
    for n in range(10):
        stats.record_maker_attempt(n * S, filled=n < 2)  # 20 % maker fills
        stats.record_routing_latency(n * S, 100.0 + n)
        stats.record_order_result(n * S, insufficient_balance=False)
    degradation = stats.degradation(10 * S, 0.25, 500, 0.1)
    assert degradation.market_only and not degradation.no_twap_or_maker and not degradation.reduce_size
    plan = plan_route(eth, Decimal(1), Decimal(2000), ExecutionConfig(), random.Random(1), degradation)
    assert all(s.style is Style.TAKER for s in plan.slices)
    stats.record_routing_latency(11 * S, 900.0)
    stats.record_routing_latency(11 * S, 950.0)
    slow = stats.degradation(12 * S, 0.25, 500, 0.1)
    assert slow.no_twap_or_maker and stats.routing_p95_ms(12 * S) == 950.0  # nearest rank of 12
    plan = plan_route(eth, Decimal(1), Decimal(2000), ExecutionConfig(), random.Random(1), slow)
    assert len(plan.slices) == 1 and plan.slices[0].style is Style.TAKER
    assert stats.maker_fill_ratio(HOUR_NS + 20 * S) is None  # the hour window forgets
    wide = plan_route(eth, Decimal("0.05"), Decimal(2000), ExecutionConfig(), random.Random(1), None, 9.0, 3.0)
    assert wide.start_delay_ms == 5000 and len(wide.slices) == 2  # wait 5 s and split


def test_taker_fallback_and_slippage() -> None:
    assert needs_taker_fallback(Decimal("0.2"), Decimal(1), 0.5)
    assert not needs_taker_fallback(Decimal("0.6"), Decimal(1), 0.5)
    assert not needs_taker_fallback(Decimal(1), Decimal(1), 1.0)
    assert slip_bps(100.05, 100.0) == pytest.approx(5.0)
    assert cost_bps(-1, 99.9, 100.0) == pytest.approx(10.0)  # a sell 10 bps below mid costs 10 bps
    with pytest.raises(ValueError, match="mid"):
        slip_bps(1.0, 0.0)
