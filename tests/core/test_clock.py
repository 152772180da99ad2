from __future__ import annotations

import pytest

from kestrel.core.clock import Clock, LiveClock, SimClock, TimeEvent


def test_sim_clock_fires_timers_in_order_and_never_goes_back() -> None:
    clock = SimClock(0)
    fired: list[tuple[str, int, int]] = []

    def record(event: TimeEvent) -> None:
        fired.append((event.name, event.ts_event, clock.timestamp_ns()))

    clock.set_timer("b", 20, record)
    clock.set_timer("a", 20, record)  # same time: insertion order decides
    clock.set_timer("tick", 5, record, interval_ns=10, stop_at_ns=35)
    assert clock.advance_to(40) == 6
    assert fired == [
        ("tick", 5, 5),
        ("tick", 15, 15),
        ("b", 20, 20),
        ("a", 20, 20),
        ("tick", 25, 25),
        ("tick", 35, 35),
    ]
    assert clock.timestamp_ns() == 40
    with pytest.raises(ValueError, match="back in time"):
        clock.advance_to(39)


def test_cancel_and_replace_timers() -> None:
    clock = SimClock(0)
    fired: list[str] = []
    clock.set_timer("x", 10, lambda e: fired.append("first"))
    clock.set_timer("x", 12, lambda e: fired.append("second"))  # replaces
    clock.set_timer("y", 11, lambda e: fired.append("y"))
    clock.cancel_timer("y")
    clock.advance_to(100)
    assert fired == ["second"]
    assert clock.next_timer_ns() is None


def test_live_clock_is_a_clock_and_moves() -> None:
    clock = LiveClock()
    assert isinstance(clock, Clock) and isinstance(SimClock(), Clock)
    first = clock.timestamp_ns()
    assert first > 1_600_000_000 * 10**9
    fired: list[int] = []
    clock.set_timer("now", first - 1, lambda e: fired.append(e.ts_event))
    assert clock.fire_due_timers() == 1 and fired == [first - 1]
    assert LiveClock(offset_ns=10**12).timestamp_ns() - clock.timestamp_ns() > 10**11
