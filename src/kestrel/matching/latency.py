"""Latency models: how late the strategy sees the market (feed) and the exchange sees our orders.

Three kinds, each seeded (R-BT-2):
- constant: the same delay every time;
- distribution: log-normal (the usual shape of network delays: a floor plus a long right tail) or a
  normal truncated at a minimum;
- measured: delays drawn (with replacement, seeded) from a file of measured round trips.

Order latency is two delays: entry (strategy → exchange) and response (exchange → strategy). A measured
file gives both per line (`entry_ms,response_ms`); a file with one column is a round trip split in half.
Feed latency can also be `recorded`: the recording's own receive times, shifted so the smallest
observed delay is zero (the recorders' clocks were not synchronised to Binance; see SOURCES.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from kestrel.core.errors import ConfigurationError

NANOS_PER_MS = 1_000_000


class LatencyModel(Protocol):
    def sample(self) -> int:
        """One delay in nanoseconds (never negative)."""
        ...

    def describe(self) -> str: ...


@dataclass(frozen=True, slots=True)
class ConstantLatency:
    delay_ns: int

    def __post_init__(self) -> None:
        if self.delay_ns < 0:
            raise ConfigurationError("a latency must not be negative")

    def sample(self) -> int:
        return self.delay_ns

    def describe(self) -> str:
        return f"constant {self.delay_ns / NANOS_PER_MS:g} ms"


class _Sampled:
    """Draws from a seeded generator in blocks (one numpy call per 4096 samples, not per sample)."""

    _BLOCK = 4096

    def __init__(self, seed: int) -> None:
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._buffer: list[int] = []

    def _draw(self, rng: np.random.Generator, count: int) -> np.ndarray:
        raise NotImplementedError

    def sample(self) -> int:
        if not self._buffer:
            values = np.maximum(self._draw(self._rng, self._BLOCK), 0.0)
            self._buffer = np.round(values).astype(np.int64)[::-1].tolist()
        return self._buffer.pop()


class LogNormalLatency(_Sampled):
    """minimum + a log-normal part with the given median (ms) and shape `sigma`."""

    def __init__(self, median_ms: float, sigma: float, seed: int, minimum_ms: float = 0.0) -> None:
        if median_ms <= 0 or sigma < 0 or minimum_ms < 0:
            raise ConfigurationError("log-normal latency needs median_ms > 0, sigma >= 0, min_ms >= 0")
        super().__init__(seed)
        self.median_ms, self.sigma, self.minimum_ms = median_ms, sigma, minimum_ms

    def _draw(self, rng: np.random.Generator, count: int) -> np.ndarray:
        values = rng.lognormal(np.log(self.median_ms), self.sigma, count)
        return (values + self.minimum_ms) * NANOS_PER_MS

    def describe(self) -> str:
        return f"lognormal median {self.median_ms:g} ms sigma {self.sigma:g} + {self.minimum_ms:g} ms"


class NormalLatency(_Sampled):
    """Normal (mean, std in ms) truncated below at `minimum_ms`."""

    def __init__(self, mean_ms: float, std_ms: float, seed: int, minimum_ms: float = 0.0) -> None:
        if std_ms < 0 or minimum_ms < 0:
            raise ConfigurationError("normal latency needs std_ms >= 0 and min_ms >= 0")
        super().__init__(seed)
        self.mean_ms, self.std_ms, self.minimum_ms = mean_ms, std_ms, minimum_ms

    def _draw(self, rng: np.random.Generator, count: int) -> np.ndarray:
        return np.maximum(rng.normal(self.mean_ms, self.std_ms, count), self.minimum_ms) * NANOS_PER_MS

    def describe(self) -> str:
        return f"normal mean {self.mean_ms:g} ms std {self.std_ms:g} ms (min {self.minimum_ms:g} ms)"


class EmpiricalLatency(_Sampled):
    """Delays drawn with replacement from measured values (ns)."""

    def __init__(self, samples_ns: Sequence[int], seed: int, label: str = "measured") -> None:
        if len(samples_ns) == 0 or min(samples_ns) < 0:
            raise ConfigurationError("measured latencies must be a non-empty list of non-negative values")
        super().__init__(seed)
        self._samples = np.asarray(samples_ns, dtype=np.float64)
        self.label = label

    def _draw(self, rng: np.random.Generator, count: int) -> np.ndarray:
        return rng.choice(self._samples, count, replace=True)

    def describe(self) -> str:
        return f"{self.label} ({len(self._samples)} samples, median {np.median(self._samples) / NANOS_PER_MS:g} ms)"


def read_measured(path: Path) -> tuple[list[int], list[int]]:
    """(entry, response) delays in ns from a file of `entry_ms,response_ms` or `round_trip_ms` lines."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigurationError(f"{path}: latency samples file not found") from None
    entry: list[int] = []
    response: list[int] = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#") or text[0].isalpha():
            continue  # blank, comment or header
        parts = [p for p in text.replace(";", ",").split(",") if p.strip()]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise ConfigurationError(f"{path}:{number}: not a number: {text!r}") from None
        if len(values) == 1:
            values = [values[0] / 2, values[0] / 2]
        if len(values) != 2 or min(values) < 0:
            raise ConfigurationError(f"{path}:{number}: expected entry_ms,response_ms (or one round trip)")
        entry.append(round(values[0] * NANOS_PER_MS))
        response.append(round(values[1] * NANOS_PER_MS))
    if not entry:
        raise ConfigurationError(f"{path}: no latency samples")
    return entry, response


@dataclass(frozen=True, slots=True)
class OrderLatency:
    """Entry (strategy → exchange) and response (exchange → strategy) delays."""

    entry: LatencyModel
    response: LatencyModel

    def describe(self) -> str:
        return f"entry {self.entry.describe()}; response {self.response.describe()}"
