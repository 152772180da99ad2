"""What the simulator sent and what it injected, per symbol, per stream kind and in total.

Counting rules (a client test compares its own counts with these):
- `messages_sent`: stream messages delivered to at least one subscriber, each counted once however
  many connections received it. A duplicate's second copy is not in `messages_sent` but in
  `duplicates_injected`. `frames_sent` counts every data frame written to any connection.
- `gaps_injected`: breaks in a diff-depth sequence (withheld messages; a run of consecutive withheld
  messages on one stream is one break, which is what a client can detect); `drops_injected`: other
  messages withheld, each counted (a client sees the missing ids);
  `reorders_injected`: messages delivered after their successor; `malformed_injected` /
  `unknown_events_injected`: extra frames sent before real messages (not in `messages_sent`). Only
  faults that hit a stream with a subscriber count (a fault nobody could observe is not injected).
- connection faults (`disconnects_injected`, `stalls_injected`, `shutdown_notices_injected`) count
  connections affected; protocol enforcement (rate limit, ping timeout, 24 h cut, slow consumer) is
  counted separately under `connections`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(slots=True)
class MessageCounters:
    messages_sent: int = 0
    frames_sent: int = 0
    gaps_injected: int = 0
    drops_injected: int = 0
    duplicates_injected: int = 0
    reorders_injected: int = 0
    malformed_injected: int = 0
    unknown_events_injected: int = 0

    def add(self, other: MessageCounters) -> None:
        for item in fields(self):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))


@dataclass(slots=True)
class ConnectionCounters:
    opened: int = 0
    closed: int = 0
    rejected_too_many_connections: int = 0
    rejected_too_many_streams: int = 0
    closed_rate_limit: int = 0
    closed_ping_timeout: int = 0
    closed_lifetime: int = 0
    closed_slow_consumer: int = 0
    disconnects_injected: int = 0
    stalls_injected: int = 0
    shutdown_notices_injected: int = 0
    control_messages: int = 0


@dataclass(slots=True)
class RestCounters:
    requests: int = 0
    errors_5xx_injected: int = 0
    errors_429_injected: int = 0
    errors_418_injected: int = 0
    rate_limited_429: int = 0  # real weight-limit breaches (not injected)
    banned_418: int = 0
    snapshots_served: int = 0
    stale_snapshots_injected: int = 0


class SimulatorStats:
    """Mutable counters; `as_dict()` is the `--stats-json` document."""

    def __init__(self) -> None:
        self.per_symbol: dict[str, MessageCounters] = {}
        self.per_stream: dict[str, MessageCounters] = {}
        self.connections = ConnectionCounters()
        self.rest = RestCounters()
        self.max_behind_ms = 0  # the most the market generation fell behind the wall clock (overload)

    def symbol(self, key: str) -> MessageCounters:
        counters = self.per_symbol.get(key)
        if counters is None:
            counters = self.per_symbol[key] = MessageCounters()
        return counters

    def stream(self, kind: str) -> MessageCounters:
        counters = self.per_stream.get(kind)
        if counters is None:
            counters = self.per_stream[kind] = MessageCounters()
        return counters

    def total(self) -> MessageCounters:
        total = MessageCounters()
        for counters in self.per_stream.values():
            total.add(counters)
        return total

    def as_dict(self) -> dict[str, Any]:
        connections = asdict(self.connections)
        return {
            "total": {
                **asdict(self.total()),
                "disconnects_injected": connections["disconnects_injected"],
                "stalls_injected": connections["stalls_injected"],
            },
            "per_symbol": {key: asdict(value) for key, value in sorted(self.per_symbol.items())},
            "per_stream": {key: asdict(value) for key, value in sorted(self.per_stream.items())},
            "connections": connections,
            "rest": asdict(self.rest),
            "pump": {"max_behind_ms": self.max_behind_ms},
        }
