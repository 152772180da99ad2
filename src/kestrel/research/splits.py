"""Leak-free cross-validation (R-RS-1): purged K-fold with embargo, and purged walk-forward.

Both are scikit-learn compatible (`split(X, y, groups)`, `get_n_splits`) and are built from every
sample's label start and end times: `starts[i]` is when sample i's features are known (its decision
time), `ends[i]` the last time its label looked at (triple-barrier exit or forward horizon).

Purging removes from training every sample whose interval [start, end] overlaps the test span
[first test start, last test end]: its label was formed from the same prices the test labels are.
The embargo also removes training samples that start within `embargo_ns` after the test span: features
that look back (rolling windows) would otherwise carry test-period information into training
(López de Prado, Advances in Financial Machine Learning, ch. 7).

Folds are contiguous in time and their boundaries never split one timestamp (several symbols at the same
bar go to the same fold).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from kestrel.core.errors import ConfigurationError, DataError


class LeakageError(DataError):
    """A train/test split lets training see information from the test period."""


def _as_times(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if starts.ndim != 1 or starts.shape != ends.shape:
        raise DataError("splitter: starts and ends must be 1-D arrays of the same length")
    if starts.size and np.any(np.diff(starts) < 0):
        raise DataError("splitter: samples must be sorted by their start time")
    if np.any(ends < starts):
        raise DataError("splitter: a sample's label ends before it starts")
    return starts, ends


def _time_blocks(starts: np.ndarray, blocks: int) -> list[tuple[int, int]]:
    """`blocks` contiguous index ranges of about equal size whose boundaries fall between timestamps."""
    unique, first_index = np.unique(starts, return_index=True)
    if unique.size < blocks:
        raise DataError(f"splitter: {unique.size} distinct times cannot make {blocks} folds")
    bounds = [int(first_index[chunk[0]]) for chunk in np.array_split(np.arange(unique.size), blocks)]
    bounds.append(int(starts.size))
    return [(bounds[k], bounds[k + 1]) for k in range(blocks)]


def purge_mask(starts: np.ndarray, ends: np.ndarray, test: np.ndarray, embargo_ns: int) -> np.ndarray:
    """True for samples allowed in training next to `test` (indices): no overlap, outside the embargo."""
    test_start = int(starts[test].min())
    test_end = int(ends[test].max())
    overlaps = (starts <= test_end) & (ends >= test_start)
    embargoed = (starts > test_end) & (starts <= test_end + embargo_ns)
    allowed = ~(overlaps | embargoed)
    allowed[test] = False
    return allowed


def check_no_leak(starts: np.ndarray, ends: np.ndarray, train: np.ndarray, test: np.ndarray, embargo_ns: int) -> None:
    """Raise LeakageError unless every training sample is purged and embargoed against `test`."""
    if np.intersect1d(train, test).size:
        raise LeakageError("a sample is in both the training and the test set")
    allowed = purge_mask(starts, ends, test, embargo_ns)
    leaking = train[~allowed[train]]
    if leaking.size:
        raise LeakageError(
            f"{leaking.size} training samples overlap the test labels or their embargo (first index {leaking[0]})"
        )


@dataclass(frozen=True)
class PurgedKFold:
    """K contiguous test folds; training is everything else minus purged and embargoed samples."""

    starts: np.ndarray
    ends: np.ndarray
    n_splits: int = 5
    embargo_ns: int = 0

    def __post_init__(self) -> None:
        if self.n_splits < 2:
            raise ConfigurationError(f"purged k-fold: n_splits must be >= 2 (got {self.n_splits})")
        if self.embargo_ns < 0:
            raise ConfigurationError("purged k-fold: embargo must be >= 0")
        starts, ends = _as_times(self.starts, self.ends)
        object.__setattr__(self, "starts", starts)
        object.__setattr__(self, "ends", ends)

    def get_n_splits(self, X: object = None, y: object = None, groups: object = None) -> int:  # noqa: N803
        return self.n_splits

    def split(
        self,
        X: object = None,  # noqa: N803 - scikit-learn's signature
        y: object = None,
        groups: object = None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        _check_length(X, self.starts.size)
        indices = np.arange(self.starts.size)
        for low, high in _time_blocks(self.starts, self.n_splits):
            test = indices[low:high]
            train = indices[purge_mask(self.starts, self.ends, test, self.embargo_ns)]
            yield train, test


@dataclass(frozen=True)
class WalkForward:
    """Train on the past, test on the next block: the timeline is cut into n_splits + 1 blocks and
    fold k tests block k + 1. `max_train_ns` bounds the training window (None = expanding)."""

    starts: np.ndarray
    ends: np.ndarray
    n_splits: int = 5
    embargo_ns: int = 0
    max_train_ns: int | None = None

    def __post_init__(self) -> None:
        if self.n_splits < 1:
            raise ConfigurationError(f"walk-forward: n_splits must be >= 1 (got {self.n_splits})")
        if self.embargo_ns < 0 or (self.max_train_ns is not None and self.max_train_ns <= 0):
            raise ConfigurationError("walk-forward: embargo must be >= 0 and max_train_ns > 0")
        starts, ends = _as_times(self.starts, self.ends)
        object.__setattr__(self, "starts", starts)
        object.__setattr__(self, "ends", ends)

    def get_n_splits(self, X: object = None, y: object = None, groups: object = None) -> int:  # noqa: N803
        return self.n_splits

    def split(
        self,
        X: object = None,  # noqa: N803 - scikit-learn's signature
        y: object = None,
        groups: object = None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        _check_length(X, self.starts.size)
        indices = np.arange(self.starts.size)
        blocks = _time_blocks(self.starts, self.n_splits + 1)
        for low, high in blocks[1:]:
            test = indices[low:high]
            test_start = int(self.starts[low])
            allowed = purge_mask(self.starts, self.ends, test, self.embargo_ns) & (self.starts < test_start)
            if self.max_train_ns is not None:
                allowed &= self.starts >= test_start - self.max_train_ns
            train = indices[allowed]
            if train.size == 0:
                raise DataError("walk-forward: a fold has no training samples left after purging")
            yield train, test


LeakFreeSplitter = PurgedKFold | WalkForward


def _check_length(X: object, expected: int) -> None:  # noqa: N803
    if X is None:
        return
    length = getattr(X, "shape", (None,))[0]
    if length is None:
        length = len(X)  # type: ignore[arg-type]
    if length != expected:
        raise DataError(f"splitter: X has {length} rows but the splitter was built for {expected} samples")
