"""The simulator's exchange clock.

Market events are generated on a simulated timeline (integer ns) that does not depend on when the
event loop happens to run; the timeline is mapped onto the wall clock only to pace emission:
``timeline_ns = origin_ns + (monotonic − monotonic_at_origin) × speed``. The server's clock as clients
see it (`serverTime`, every event time `E`/`T`) is that timeline plus `offset_ns` (a replay's
exchange-minus-recorder clock offset) plus the injected skew.

Speed 0 means "as fast as possible" (replay only): the timeline then stands wherever the source has
got to (`set_position`), and the server clock follows it.

Wall time comes from `kestrel.core.clock.LiveClock`, the one place allowed to read it.
"""

from __future__ import annotations

from kestrel.core.clock import LiveClock

NANOS_PER_SECOND = 1_000_000_000
NANOS_PER_MILLI = 1_000_000


class Timeline:
    def __init__(self, clock: LiveClock | None = None, speed: float = 1.0) -> None:
        if speed < 0:
            raise ValueError("speed must not be negative")
        self._clock = clock or LiveClock()
        self.speed = speed
        self.origin_ns = 0
        self._origin_monotonic_ns = 0
        self._position_ns = 0
        self.skew_ns = 0
        self.offset_ns = 0
        self.started = False

    @property
    def as_fast_as_possible(self) -> bool:
        return self.speed == 0

    def set_position(self, timeline_ns: int) -> None:
        """Speed 0: where the source has got to."""
        self._position_ns = timeline_ns

    def start(self, origin_ns: int | None = None) -> None:
        """Pin the timeline: `origin_ns` (default: the wall clock now) corresponds to this instant."""
        self.origin_ns = self._clock.timestamp_ns() if origin_ns is None else origin_ns
        self._origin_monotonic_ns = self._clock.monotonic_ns()
        self._position_ns = self.origin_ns
        self.started = True

    def monotonic_s(self) -> float:
        return self._clock.monotonic_ns() / NANOS_PER_SECOND

    def now_ns(self) -> int:
        """The current point of the simulated timeline (no skew)."""
        if self.speed == 0:
            return self._position_ns
        elapsed = self._clock.monotonic_ns() - self._origin_monotonic_ns
        return self.origin_ns + int(elapsed * self.speed)

    def server_ms(self, timeline_ns: int | None = None) -> int:
        """The server's clock in ms (skew included) at `timeline_ns` (default: now)."""
        point = self.now_ns() if timeline_ns is None else timeline_ns
        return (point + self.offset_ns + self.skew_ns) // NANOS_PER_MILLI

    def seconds_until(self, timeline_ns: int) -> float:
        """Wall seconds until the timeline reaches `timeline_ns` (negative when already past)."""
        if self.speed == 0:
            return 0.0
        return (timeline_ns - self.now_ns()) / self.speed / NANOS_PER_SECOND

    def rebase(self, origin_ns: int) -> None:
        """Jump the timeline so that now corresponds to `origin_ns` (replay: restart at a new position)."""
        self.origin_ns = origin_ns
        self._origin_monotonic_ns = self._clock.monotonic_ns()
        self._position_ns = origin_ns
