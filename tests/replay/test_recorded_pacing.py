"""Replay pacing at N× real time, through the Clock (a SimClock here: no wall time, no waiting)."""

from __future__ import annotations

import asyncio

from kestrel.core.clock import SimClock
from kestrel.core.enums import Market
from kestrel.core.events import OpenInterest
from kestrel.replay.recorded import apaced, paced

SECOND = 1_000_000_000


def events() -> list[OpenInterest]:
    return [OpenInterest(Market.FUTURES, "BTCUSDT", 1.0, ts, ts) for ts in (10 * SECOND, 11 * SECOND, 13 * SECOND)]


def test_paced_at_twice_real_time_waits_half_the_gaps() -> None:
    clock = SimClock(1_000 * SECOND)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance_to(clock.timestamp_ns() + round(seconds * SECOND))

    emitted = [(event.ts_event, clock.timestamp_ns()) for event in paced(events(), clock, 2.0, sleep)]
    assert waits == [0.5, 1.0]
    assert [at - 1_000 * SECOND for _, at in emitted] == [0, SECOND // 2, 3 * SECOND // 2]


def test_speed_zero_is_as_fast_as_possible() -> None:
    clock = SimClock(0)
    assert list(paced(events(), clock, 0, lambda _: (_ for _ in ()).throw(AssertionError("no sleep")))) == events()


def test_async_pacing_lets_other_tasks_run() -> None:
    async def scenario() -> list[int]:
        clock = SimClock(0)
        out = [event.ts_event async for event in apaced(events(), clock, 0)]
        return out

    assert asyncio.run(scenario()) == [10 * SECOND, 11 * SECOND, 13 * SECOND]
