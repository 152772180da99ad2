"""Queue models, latency models and SimVenue's latency / FIFO delivery."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kestrel.core.clock import SimClock
from kestrel.core.enums import OrderStatus, Side
from kestrel.core.errors import ConfigurationError
from kestrel.core.venue import ExecutionType, OrderUpdate, VenueEvent
from kestrel.matching import kernel as k
from kestrel.matching.latency import (
    ConstantLatency,
    EmpiricalLatency,
    LogNormalLatency,
    NormalLatency,
    OrderLatency,
    read_measured,
)
from kestrel.matching.venue import SimVenue
from tests.matching.helpers import FUT, D, engine, limit, snapshot


def params(model: int, power: float = 2.0) -> np.ndarray:
    values = np.zeros(k.PARAMS_SIZE)
    values[k.P_QUEUE_MODEL] = model
    values[k.P_QUEUE_POWER] = power
    return values


def test_risk_averse_queue_only_shrinks_to_the_level() -> None:
    risk_averse = params(k.QUEUE_RISK_AVERSE)
    assert k.queue_on_depth(5.0, 10, 8, 0, risk_averse) == 5.0
    assert k.queue_on_depth(5.0, 10, 3, 0, risk_averse) == 3.0
    assert k.queue_on_depth(5.0, 10, 12, 0, risk_averse) == 5.0


def test_power_queue_splits_cancellations_by_position() -> None:
    power = params(k.QUEUE_POWER, 2.0)
    assert k.queue_on_depth(5.0, 10, 8, 0, power) == pytest.approx(4.0)  # half the cancels were ahead
    assert k.queue_on_depth(1.0, 10, 5, 0, power) == pytest.approx(1.0 - 5.0 / 82.0)  # most were behind
    assert k.queue_on_depth(5.0, 10, 8, 2, power) == 5.0  # the decrease was the trades already counted
    assert k.queue_on_depth(1.0, 10, 0, 0, power) == 0.0  # never negative
    assert 0.0 <= k.queue_on_depth(9.0, 10, 2, 0, params(k.QUEUE_LOG)) <= 2.0


def test_constant_latency() -> None:
    assert ConstantLatency(7).sample() == 7
    with pytest.raises(ConfigurationError):
        ConstantLatency(-1)


def test_seeded_distributions_reproduce_and_differ_by_seed() -> None:
    first = [LogNormalLatency(2.0, 0.5, seed=1).sample() for _ in range(3)]
    a, b, c = (LogNormalLatency(2.0, 0.5, seed=s) for s in (1, 1, 2))
    draws_a = [a.sample() for _ in range(100)]
    assert draws_a == [b.sample() for _ in range(100)]
    assert draws_a != [c.sample() for _ in range(100)]
    assert first[0] == draws_a[0]
    normal = NormalLatency(1.0, 5.0, seed=3, minimum_ms=0.5)
    assert min(normal.sample() for _ in range(1000)) >= 500_000


def test_measured_latencies_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "rtt.csv"
    path.write_text("entry_ms,response_ms\n1.5,2.5\n# a comment\n3,4\n10\n", encoding="utf-8")
    entry, response = read_measured(path)
    assert entry == [1_500_000, 3_000_000, 5_000_000] and response == [2_500_000, 4_000_000, 5_000_000]
    model = EmpiricalLatency(entry, seed=4)
    assert {model.sample() for _ in range(200)} <= set(entry)
    (tmp_path / "bad.csv").write_text("1,x\n", encoding="utf-8")
    with pytest.raises(ConfigurationError):
        read_measured(tmp_path / "bad.csv")
    with pytest.raises(ConfigurationError):
        read_measured(tmp_path / "missing.csv")


def test_sim_venue_applies_entry_and_response_latency() -> None:
    e = engine()
    e.apply(snapshot(FUT))
    clock = SimClock(1_000_000)
    venue = SimVenue(e, "a", clock, OrderLatency(ConstantLatency(10_000_000), ConstantLatency(5_000_000)))
    received: list[VenueEvent] = []
    venue.set_event_handler(received.append)
    client_id = venue.submit_order(limit(Side.BUY, "0.1", "99.0"))
    assert venue.order(FUT, "BTCUSDT", client_id).status is OrderStatus.SUBMITTED  # type: ignore[union-attr]
    assert venue.next_due_ns() == 11_000_000
    venue.process_due(11_000_000)
    assert received == [] and e.orders[1].ts_created == 11_000_000
    assert venue.next_due_ns() == 16_000_000
    venue.process_due(16_000_000)
    update = received[0]
    assert isinstance(update, OrderUpdate) and update.ts_event == 11_000_000 and update.ts_init == 16_000_000
    assert venue.order(FUT, "BTCUSDT", client_id).status is OrderStatus.NEW  # type: ignore[union-attr]


def test_sim_venue_reports_rejections_as_events_and_keeps_fifo_order() -> None:
    e = engine()
    e.apply(snapshot(FUT))
    clock = SimClock(0)
    venue = SimVenue(e, "a", clock, OrderLatency(LogNormalLatency(5, 1.0, seed=9), LogNormalLatency(5, 1.0, seed=10)))
    received: list[VenueEvent] = []
    venue.set_event_handler(received.append)
    venue.submit_order(limit(Side.BUY, "0.1", "100.05"))  # off the tick grid
    for n in range(20):
        clock.advance_to(clock.timestamp_ns() + 100_000)
        venue.submit_order(limit(Side.BUY, "0.1", "99.0"))
        del n
    while (due := venue.next_due_ns()) is not None:
        venue.process_due(due)
    # separate requests may overtake each other (random entry latency); the event stream stays FIFO
    rejected = [ev for ev in received if isinstance(ev, OrderUpdate) and ev.execution_type is ExecutionType.REJECTED]
    assert len(rejected) == 1 and rejected[0].code == -4014
    deliveries = [ev.ts_init for ev in received]
    assert deliveries == sorted(deliveries)
    assert len(venue.open_orders(FUT)) == 20
    assert venue.open_orders()[0].price == D("99.0")
