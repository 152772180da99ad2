"""Out-of-fold training through the dataset layer: every score comes from a model that never saw its
sample, its label's time span, or the embargo after it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kestrel.research.dataset import Dataset, Fold
from kestrel.research.models import ModelSpec, make_classifier, make_regressor, positive_probability
from kestrel.research.splits import LeakFreeSplitter

Progress = Callable[[int], None]


@dataclass(frozen=True)
class OutOfFold:
    """Scores of each sample from the fold that tested it; `fold_of` is −1 for never-tested samples
    (the first block of a walk-forward)."""

    probabilities: np.ndarray
    returns: np.ndarray | None
    fold_of: np.ndarray
    folds: list[Fold]

    @property
    def tested(self) -> np.ndarray:
        return self.fold_of >= 0


def out_of_fold(
    dataset: Dataset,
    splitter: LeakFreeSplitter,
    spec: ModelSpec,
    with_regressor: bool = True,
    progress: Progress | None = None,
) -> OutOfFold:
    folds = dataset.folds(splitter)
    probabilities = np.full(dataset.rows, math.nan)
    returns = np.full(dataset.rows, math.nan) if with_regressor else None
    fold_of = np.full(dataset.rows, -1, dtype=np.int64)
    for fold in folds:
        train_x = dataset.features[fold.train]
        test_x = dataset.features[fold.test]
        classifier = make_classifier(spec)
        classifier.fit(train_x, dataset.target[fold.train])
        probabilities[fold.test] = positive_probability(classifier, test_x)
        if returns is not None:
            regressor = make_regressor(spec)
            regressor.fit(train_x, dataset.forward_return[fold.train])
            returns[fold.test] = regressor.predict(test_x)
        fold_of[fold.test] = fold.number
        if progress is not None:
            progress(1)
    return OutOfFold(probabilities, returns, fold_of, folds)
