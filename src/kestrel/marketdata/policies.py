"""The REST-fallback cooldown (R-MD-4); the reconnect backoff is `kestrel.binance.backoff.Backoff`."""

from __future__ import annotations

from dataclasses import dataclass, field

from kestrel.binance.backoff import Backoff

__all__ = ["Backoff", "RestCooldown"]


@dataclass
class RestCooldown:
    """Per-symbol exponential cooldown of REST fallback polls: base × 2^failures, capped.

    After a successful poll a symbol waits `base_s` (60 s by default) before the next one; each failed
    poll doubles the wait up to `maximum_s` (300 s), so the fallback stays cheap in request weight.
    """

    base_s: float = 60.0
    maximum_s: float = 300.0
    failures: dict[str, int] = field(default_factory=dict)
    ready_at_ns: dict[str, int] = field(default_factory=dict)

    def is_ready(self, key: str, now_ns: int) -> bool:
        return now_ns >= self.ready_at_ns.get(key, 0)

    def cooldown_s(self, key: str) -> float:
        return float(min(self.base_s * (2 ** self.failures.get(key, 0)), self.maximum_s))

    def on_success(self, key: str, now_ns: int) -> None:
        self.failures.pop(key, None)
        self.ready_at_ns[key] = now_ns + int(self.cooldown_s(key) * 1e9)

    def on_failure(self, key: str, now_ns: int) -> None:
        self.failures[key] = self.failures.get(key, 0) + 1
        self.ready_at_ns[key] = now_ns + int(self.cooldown_s(key) * 1e9)

    def clear(self, key: str) -> None:
        """The stream is back: forget the symbol's fallback state."""
        self.failures.pop(key, None)
        self.ready_at_ns.pop(key, None)
