"""Leak-free validation. Acceptance: on overlapping labels without signal, ordinary K-fold inflates the
score while purged K-fold with embargo reports chance; a planted signal is still found."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold, cross_val_predict, cross_val_score

from kestrel.config.research import CrossValidationConfig
from kestrel.core.errors import ConfigurationError, DataError
from kestrel.research.dataset import Dataset
from kestrel.research.splits import LeakageError, PurgedKFold, WalkForward, check_no_leak, purge_mask

HOUR = 3_600_000_000_000


def _model():  # type: ignore[no-untyped-def]
    import lightgbm

    return lightgbm.LGBMClassifier(
        n_estimators=100, num_leaves=15, learning_rate=0.1, min_child_samples=20,
        deterministic=True, force_col_wise=True, n_jobs=1, random_state=0, verbose=-1,
    )  # fmt: skip


def _overlapping_data(signal: float, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """3000 hourly samples; label = sign of the next 24 returns (labels overlap 23/24 with their
    neighbours); features = slow random walks (they identify the period, not the future) and, when
    `signal` > 0, one feature that really moves the label."""
    generator = np.random.default_rng(seed)
    n, horizon = 3000, 24
    returns = generator.standard_normal(n + horizon)
    cumulative = np.concatenate([[0.0], np.cumsum(returns)])
    forward = cumulative[np.arange(n) + 1 + horizon] - cumulative[np.arange(n) + 1]
    walks = np.cumsum(generator.standard_normal((n, 3)), axis=0)
    planted = generator.standard_normal(n)
    labels = (forward + signal * np.sqrt(horizon) * planted > 0).astype(int)
    features = np.column_stack([walks, planted]) if signal > 0 else walks
    starts = np.arange(n) * HOUR
    return features, labels, starts, starts + horizon * HOUR


def _purged_auc(features: np.ndarray, labels: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> float:
    scores = np.full(labels.size, np.nan)
    for train, test in PurgedKFold(starts, ends, n_splits=5, embargo_ns=24 * HOUR).split(features):
        scores[test] = _model().fit(features[train], labels[train]).predict_proba(features[test])[:, 1]
    return float(roc_auc_score(labels, scores))


def test_ordinary_kfold_inflates_while_purged_kfold_reports_chance() -> None:
    features, labels, starts, ends = _overlapping_data(signal=0.0)
    shuffled = cross_val_predict(
        _model(), features, labels, cv=KFold(5, shuffle=True, random_state=0), method="predict_proba"
    )[:, 1]
    ordinary = roc_auc_score(labels, shuffled)
    purged = _purged_auc(features, labels, starts, ends)
    assert ordinary > 0.75, ordinary  # memorised neighbours, not skill
    assert abs(purged - 0.5) < 0.05, purged


def test_purged_kfold_still_finds_a_planted_signal() -> None:
    features, labels, starts, ends = _overlapping_data(signal=1.0)
    purged = _purged_auc(features, labels, starts, ends)
    assert purged > 0.65, purged


def test_folds_are_purged_embargoed_and_respect_timestamps() -> None:
    generator = np.random.default_rng(1)
    starts = np.sort(np.repeat(np.arange(400) * HOUR, 2))  # two symbols per timestamp
    ends = starts + generator.integers(1, 30, starts.size) * HOUR
    splitter = PurgedKFold(starts, ends, n_splits=4, embargo_ns=10 * HOUR)
    tested = np.zeros(starts.size, dtype=int)
    for train, test in splitter.split(np.zeros((starts.size, 1))):
        tested[test] += 1
        check_no_leak(starts, ends, train, test, 10 * HOUR)
        boundary = starts[test]
        assert not np.isin(starts[train], boundary).any()  # a timestamp never straddles folds
        after = starts[train] > ends[test].max()
        assert (starts[train][after] > ends[test].max() + 10 * HOUR).all()
    assert (tested == 1).all()
    assert splitter.get_n_splits() == 4


def test_walk_forward_trains_only_on_the_past() -> None:
    starts = np.arange(600) * HOUR
    ends = starts + 12 * HOUR
    folds = list(WalkForward(starts, ends, n_splits=4, embargo_ns=12 * HOUR, max_train_ns=200 * HOUR).split())
    assert len(folds) == 4
    for train, test in folds:
        assert ends[train].max() < starts[test].min()
        assert starts[train].min() >= starts[test].min() - 200 * HOUR


def test_leaks_are_detected_and_unsafe_splitters_refused() -> None:
    starts = np.arange(100) * HOUR
    ends = starts + 5 * HOUR
    with pytest.raises(LeakageError, match="overlap"):
        check_no_leak(starts, ends, np.arange(0, 50), np.arange(50, 100), 0)
    with pytest.raises(LeakageError, match="both"):
        check_no_leak(starts, ends, np.arange(0, 51), np.arange(50, 100), 0)
    dataset = Dataset(
        features=np.zeros((100, 1), dtype=np.float32), feature_names=("x",), target=np.zeros(100),
        forward_return=np.zeros(100), net_return=np.zeros(100), cost=np.ones(100), starts=starts, ends=ends,
        symbols=np.array(["A"] * 100), regimes=np.array(["flat"] * 100), embargo_ns=5 * HOUR,
    )  # fmt: skip
    with pytest.raises(ConfigurationError, match="not a leak-free splitter"):
        dataset.folds(KFold(5))
    with pytest.raises(ConfigurationError, match="embargo"):
        dataset.folds(PurgedKFold(starts, ends, 5, embargo_ns=0))
    with pytest.raises(ConfigurationError, match="other samples"):
        dataset.folds(PurgedKFold(starts[:50], ends[:50], 5, 5 * HOUR))
    folds = dataset.folds(dataset.splitter(CrossValidationConfig(folds=5), HOUR))
    assert len(folds) == 5
    with pytest.raises(DataError, match="sorted"):
        PurgedKFold(starts[::-1], ends[::-1])
    with pytest.raises(DataError, match="rows"):
        list(PurgedKFold(starts, ends).split(np.zeros((3, 1))))


def test_scikit_learn_accepts_the_splitter() -> None:
    features, labels, starts, ends = _overlapping_data(signal=1.0)
    scores = cross_val_score(_model(), features, labels, cv=PurgedKFold(starts, ends, 3, 24 * HOUR), scoring="roc_auc")
    assert scores.shape == (3,) and (scores > 0.6).all()


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=0, max_value=20), min_size=12, max_size=80),
    folds=st.integers(min_value=2, max_value=6),
    embargo=st.integers(min_value=0, max_value=10),
)
def test_no_training_sample_ever_touches_the_test_span(lengths: list[int], folds: int, embargo: int) -> None:
    starts = np.arange(len(lengths)) * HOUR
    ends = starts + np.asarray(lengths) * HOUR
    for train, test in PurgedKFold(starts, ends, folds, embargo * HOUR).split():
        allowed = purge_mask(starts, ends, test, embargo * HOUR)
        assert allowed[train].all()
        span_start, span_end = starts[test].min(), ends[test].max()
        assert not ((starts[train] <= span_end) & (ends[train] >= span_start)).any()
