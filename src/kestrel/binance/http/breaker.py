"""A circuit breaker for write calls (R-EX-4): after `threshold` consecutive failures it opens and
refuses writes for `reset_after_ns`; then one trial call is let through (half-open)."""

from __future__ import annotations

from dataclasses import dataclass

from kestrel.core.errors import TemporaryError


class CircuitOpen(TemporaryError):
    """Writes are suspended after repeated failures; retry after `retry_after_ms`."""

    def __init__(self, retry_after_ms: int) -> None:
        super().__init__(f"write circuit open: retry in {retry_after_ms} ms")
        self.retry_after_ms = retry_after_ms


@dataclass
class CircuitBreaker:
    threshold: int = 5
    reset_after_ns: int = 30_000_000_000
    failures: int = 0
    opened_at_ns: int | None = None

    def before_call(self, now_ns: int) -> None:
        if self.opened_at_ns is None:
            return
        remaining = self.opened_at_ns + self.reset_after_ns - now_ns
        if remaining > 0:
            raise CircuitOpen(remaining // 1_000_000)
        # half-open: let this call through; its outcome closes or re-opens the circuit

    def on_success(self) -> None:
        self.failures = 0
        self.opened_at_ns = None

    def on_failure(self, now_ns: int) -> None:
        self.failures += 1
        if self.failures >= self.threshold or self.opened_at_ns is not None:
            self.opened_at_ns = now_ns

    @property
    def is_open(self) -> bool:
        return self.opened_at_ns is not None
