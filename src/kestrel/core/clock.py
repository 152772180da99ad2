"""The clock: the only source of time in Kestrel.

`SimClock` is advanced by the event loop (backtests, replay): deterministic, never reads the wall.
`LiveClock` reads the wall clock (paper and live trading); this module is the one place allowed to.
Both keep timers in one heap with a deterministic order: by fire time, then by insertion.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from kestrel.core.events import NANOS_PER_MILLI


@dataclass(frozen=True, slots=True)
class TimeEvent:
    """A timer firing: `name` and the scheduled time (`ts_event`) and when it was handled (`ts_init`)."""

    name: str
    ts_event: int
    ts_init: int


TimerCallback = Callable[[TimeEvent], None]


@dataclass(order=True, slots=True)
class _Timer:
    fire_at_ns: int
    sequence: int
    name: str = field(compare=False)
    callback: TimerCallback = field(compare=False)
    interval_ns: int | None = field(compare=False, default=None)
    stop_at_ns: int | None = field(compare=False, default=None)
    cancelled: bool = field(compare=False, default=False)


@runtime_checkable
class Clock(Protocol):
    def timestamp_ns(self) -> int: ...

    def timestamp_ms(self) -> int: ...

    def set_timer(
        self,
        name: str,
        fire_at_ns: int,
        callback: TimerCallback,
        interval_ns: int | None = None,
        stop_at_ns: int | None = None,
    ) -> None: ...

    def cancel_timer(self, name: str) -> None: ...

    def next_timer_ns(self) -> int | None: ...

    def fire_due_timers(self, until_ns: int) -> int: ...


class _TimerHeap:
    def __init__(self) -> None:
        self._heap: list[_Timer] = []
        self._by_name: dict[str, _Timer] = {}
        self._sequence = itertools.count()

    def set_timer(
        self,
        name: str,
        fire_at_ns: int,
        callback: TimerCallback,
        interval_ns: int | None = None,
        stop_at_ns: int | None = None,
    ) -> None:
        if interval_ns is not None and interval_ns <= 0:
            raise ValueError(f"timer {name!r}: interval must be positive")
        self.cancel_timer(name)
        timer = _Timer(fire_at_ns, next(self._sequence), name, callback, interval_ns, stop_at_ns)
        self._by_name[name] = timer
        heapq.heappush(self._heap, timer)

    def cancel_timer(self, name: str) -> None:
        timer = self._by_name.pop(name, None)
        if timer is not None:
            timer.cancelled = True

    def timer_names(self) -> list[str]:
        return sorted(self._by_name)

    def next_timer_ns(self) -> int | None:
        while self._heap and self._heap[0].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0].fire_at_ns if self._heap else None

    def pop_due(self, until_ns: int) -> _Timer | None:
        next_ns = self.next_timer_ns()
        if next_ns is None or next_ns > until_ns:
            return None
        timer = heapq.heappop(self._heap)
        if timer.interval_ns is not None:
            following = timer.fire_at_ns + timer.interval_ns
            if timer.stop_at_ns is None or following <= timer.stop_at_ns:
                again = _Timer(
                    following,
                    next(self._sequence),
                    timer.name,
                    timer.callback,
                    timer.interval_ns,
                    timer.stop_at_ns,
                )
                self._by_name[timer.name] = again
                heapq.heappush(self._heap, again)
                return timer
        self._by_name.pop(timer.name, None)
        return timer


class _TimerOwner:
    """The timer half shared by both clocks."""

    def __init__(self) -> None:
        self._timers = _TimerHeap()

    def set_timer(
        self,
        name: str,
        fire_at_ns: int,
        callback: TimerCallback,
        interval_ns: int | None = None,
        stop_at_ns: int | None = None,
    ) -> None:
        self._timers.set_timer(name, fire_at_ns, callback, interval_ns, stop_at_ns)

    def cancel_timer(self, name: str) -> None:
        self._timers.cancel_timer(name)

    def timer_names(self) -> list[str]:
        return self._timers.timer_names()

    def next_timer_ns(self) -> int | None:
        return self._timers.next_timer_ns()


class SimClock(_TimerOwner):
    """Deterministic clock for backtests and replay: time moves only when the driver says so."""

    def __init__(self, start_ns: int = 0) -> None:
        super().__init__()
        self._now_ns = start_ns

    def timestamp_ns(self) -> int:
        return self._now_ns

    def timestamp_ms(self) -> int:
        return self._now_ns // NANOS_PER_MILLI

    def fire_due_timers(self, until_ns: int) -> int:
        """Fire every timer due at or before `until_ns` in order, moving the clock to each fire time."""
        fired = 0
        while (timer := self._timers.pop_due(until_ns)) is not None:
            self._now_ns = max(self._now_ns, timer.fire_at_ns)
            timer.callback(TimeEvent(timer.name, timer.fire_at_ns, self._now_ns))
            fired += 1
        return fired

    def advance_to(self, ts_ns: int) -> int:
        """Fire due timers, then set the time to `ts_ns`. Time never goes backwards."""
        if ts_ns < self._now_ns:
            raise ValueError(f"SimClock cannot go back in time: {ts_ns} < {self._now_ns}")
        fired = self.fire_due_timers(ts_ns)
        self._now_ns = ts_ns
        return fired


class LiveClock(_TimerOwner):
    """Wall-clock time (UTC, ns). Timers fire when the node's loop calls `fire_due_timers`.

    `offset_ns` lets a caller model a known skew (the simulator's clock-skew fault uses it).
    """

    def __init__(self, offset_ns: int = 0) -> None:
        super().__init__()
        self._offset_ns = offset_ns

    def timestamp_ns(self) -> int:
        return time.time_ns() + self._offset_ns

    def timestamp_ms(self) -> int:
        return self.timestamp_ns() // NANOS_PER_MILLI

    def monotonic_ns(self) -> int:
        """For measuring durations (latency), immune to wall-clock steps."""
        return time.monotonic_ns()

    def fire_due_timers(self, until_ns: int | None = None) -> int:
        limit = self.timestamp_ns() if until_ns is None else until_ns
        fired = 0
        while (timer := self._timers.pop_due(limit)) is not None:
            timer.callback(TimeEvent(timer.name, timer.fire_at_ns, self.timestamp_ns()))
            fired += 1
        return fired
