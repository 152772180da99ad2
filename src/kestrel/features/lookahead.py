"""The lookahead checker: proves a feature at t uses nothing after t, by recomputation on truncated data.

`compute(until_ns)` must return the feature table computed from the inputs as they were known at
`until_ns` (None = everything). For several cut times the checker recomputes on the truncated inputs and
compares every row with `ts <= cut` to the full computation: a causal feature gives the same value; a
feature that peeks ahead (a centred window, a `shift(-1)`, a join on the wrong side, a normaliser fitted
on the whole series) gives a different one at the rows just before the cut, and is named in the report.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from kestrel.core.errors import DataError

FeatureComputation = Callable[[int | None], pl.DataFrame]


@dataclass(frozen=True, slots=True)
class Violation:
    feature: str
    cut_ns: int
    ts: int
    key: str
    full_value: float | None
    truncated_value: float | None


@dataclass
class LookaheadReport:
    checked_features: list[str]
    cuts_ns: list[int]
    rows_compared: int
    violations: dict[str, Violation] = field(default_factory=dict)  # first violation per feature

    @property
    def passed(self) -> bool:
        return not self.violations

    def summary(self) -> str:
        if self.passed:
            return (
                f"lookahead check passed: {len(self.checked_features)} features, {len(self.cuts_ns)} cuts, "
                f"{self.rows_compared} rows recomputed"
            )
        names = ", ".join(sorted(self.violations))
        return f"lookahead check FAILED: {names} use data after their timestamp"


def _same(full: np.ndarray, truncated: np.ndarray, rtol: float) -> np.ndarray:
    both_nan = np.isnan(full) & np.isnan(truncated)
    close = np.abs(full - truncated) <= rtol * np.maximum(np.abs(full), np.abs(truncated))
    return np.asarray(both_nan | close)


def check_lookahead(
    compute: FeatureComputation,
    cuts_ns: Sequence[int],
    keys: Sequence[str] = ("ts", "symbol"),
    features: Sequence[str] | None = None,
    rtol: float = 1e-12,
) -> LookaheadReport:
    """Compare the full computation with recomputations truncated at each of `cuts_ns`.

    `rtol` absorbs only floating-point noise (a causal feature is normally bit-identical); NaN equals NaN.
    """
    full = compute(None)
    missing = [key for key in keys if key not in full.columns]
    if missing:
        raise DataError(f"lookahead check: the feature table lacks key columns {missing}")
    names = list(features) if features is not None else [c for c in full.columns if c not in keys]
    numeric = [n for n in names if full.schema[n].is_numeric() or full.schema[n] == pl.Boolean]
    report = LookaheadReport(numeric, sorted(cuts_ns), 0)
    for cut in report.cuts_ns:
        truncated = compute(cut).filter(pl.col("ts") <= cut)
        reference = full.filter(pl.col("ts") <= cut)
        joined = reference.select([*keys, *numeric]).join(
            truncated.select([*keys, *[n for n in numeric if n in truncated.columns]]),
            on=list(keys),
            how="left",
            suffix="__cut",
            maintain_order="left",
        )
        report.rows_compared += joined.height
        for name in numeric:
            if name in report.violations:
                continue
            other = f"{name}__cut"
            full_values = joined[name].cast(pl.Float64).fill_null(math.nan).to_numpy()
            if other not in joined.columns:
                cut_values = np.full(full_values.shape, math.nan)
            else:
                cut_values = joined[other].cast(pl.Float64).fill_null(math.nan).to_numpy()
            same = _same(full_values, cut_values, rtol)
            if not same.all():
                row = int(np.flatnonzero(~same)[0])
                report.violations[name] = Violation(
                    feature=name,
                    cut_ns=cut,
                    ts=int(joined["ts"][row]),
                    key=" ".join(str(joined[k][row]) for k in keys),
                    full_value=None if math.isnan(full_values[row]) else float(full_values[row]),
                    truncated_value=None if math.isnan(cut_values[row]) else float(cut_values[row]),
                )
    return report


def cut_times(times: np.ndarray, count: int, skip_fraction: float = 0.1) -> list[int]:
    """`count` cut times spread over the series (after its first `skip_fraction`, so features have warmed
    up), each placed exactly on an existing timestamp: the row just before a cut is the one a peeking
    feature cannot compute."""
    unique = np.unique(times)
    if unique.size < 3:
        raise DataError("lookahead check: too few timestamps to cut")
    start = int(unique.size * skip_fraction)
    positions = np.linspace(start, unique.size - 2, num=min(count, unique.size - 1 - start)).astype(np.int64)
    return sorted({int(unique[p]) for p in positions})
