"""The dataset layer: samples with their label intervals, and the only way to split them.

A `Dataset` carries every sample's decision time (`starts`) and label end (`ends`). Training code gets
train/test indices only from `Dataset.folds`, which accepts nothing but the purged splitters of
`kestrel.research.splits` and re-checks every fold for overlap and embargo before handing it out — so a
training run cannot fall back to a shuffled K-fold by accident or by design (R-RS-1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kestrel.config.research import CrossValidationConfig
from kestrel.core.errors import ConfigurationError, DataError
from kestrel.research.splits import LeakFreeSplitter, PurgedKFold, WalkForward, check_no_leak

REGIMES = ("flat", "trend", "high_vol")


@dataclass(frozen=True, slots=True)
class Fold:
    number: int
    train: np.ndarray
    test: np.ndarray


@dataclass(frozen=True)
class Dataset:
    """Model-ready samples in time order. `features` is float32: the precision the model is served at,
    so training, native prediction and ONNX see the same numbers."""

    features: np.ndarray
    feature_names: tuple[str, ...]
    target: np.ndarray  # classifier target (0/1)
    forward_return: np.ndarray  # regressor target: gross forward return over K bars
    net_return: np.ndarray  # forward return of a long net of fees, slippage and settled funding
    cost: np.ndarray  # C(s,t) as a fraction
    starts: np.ndarray  # int64 ns: decision times
    ends: np.ndarray  # int64 ns: label ends
    symbols: np.ndarray
    regimes: np.ndarray
    embargo_ns: int = 0

    def __post_init__(self) -> None:
        rows = self.features.shape[0]
        if self.features.ndim != 2 or self.features.shape[1] != len(self.feature_names):
            raise DataError("dataset: features must be rows × named columns")
        for name in ("target", "forward_return", "net_return", "cost", "starts", "ends", "symbols", "regimes"):
            if getattr(self, name).shape[0] != rows:
                raise DataError(f"dataset: {name} has {getattr(self, name).shape[0]} rows, features have {rows}")
        if self.features.dtype != np.float32:
            raise DataError("dataset: features must be float32")
        if rows and np.any(np.diff(self.starts) < 0):
            raise DataError("dataset: samples must be in time order")
        if not np.all(np.isfinite(self.features)):
            raise DataError("dataset: features contain NaN or infinity (drop warm-up rows first)")

    @property
    def rows(self) -> int:
        return int(self.features.shape[0])

    def splitter(self, config: CrossValidationConfig, interval_ns: int) -> LeakFreeSplitter:
        """The configured leak-free splitter for this dataset (the embargo is the dataset's own)."""
        if config.scheme == "walk_forward":
            max_train = config.max_train_bars * interval_ns if config.max_train_bars else None
            return WalkForward(self.starts, self.ends, config.folds, self.embargo_ns, max_train)
        return PurgedKFold(self.starts, self.ends, config.folds, self.embargo_ns)

    def folds(self, splitter: object) -> list[Fold]:
        """Train/test folds from a leak-free splitter, each verified purged and embargoed."""
        if not isinstance(splitter, PurgedKFold | WalkForward):
            raise ConfigurationError(
                f"{type(splitter).__name__} is not a leak-free splitter: use PurgedKFold or WalkForward"
            )
        if splitter.starts.shape != self.starts.shape or not np.array_equal(splitter.starts, self.starts):
            raise ConfigurationError("the splitter was built for other samples than this dataset's")
        if splitter.embargo_ns < self.embargo_ns:
            raise ConfigurationError(
                f"the splitter's embargo ({splitter.embargo_ns} ns) is shorter than the dataset's "
                f"({self.embargo_ns} ns)"
            )
        folds = []
        for number, (train, test) in enumerate(splitter.split(self.features)):
            check_no_leak(self.starts, self.ends, train, test, self.embargo_ns)
            folds.append(Fold(number, train, test))
        return folds

    def subset(self, index: np.ndarray) -> Dataset:
        """The rows `index` (kept in time order) as a dataset of their own."""
        index = np.sort(np.asarray(index))
        return Dataset(
            features=self.features[index],
            feature_names=self.feature_names,
            target=self.target[index],
            forward_return=self.forward_return[index],
            net_return=self.net_return[index],
            cost=self.cost[index],
            starts=self.starts[index],
            ends=self.ends[index],
            symbols=self.symbols[index],
            regimes=self.regimes[index],
            embargo_ns=self.embargo_ns,
        )
