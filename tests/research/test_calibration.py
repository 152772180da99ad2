from __future__ import annotations

import math

import numpy as np
import pytest

from kestrel.core.errors import DataError
from kestrel.research.calibration import (
    Calibrator,
    cross_fitted,
    fit_calibrator,
    reliability_table,
    worst_bucket_error_pp,
)


def _overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Overconfident scores: the true log-odds are half the score's, p_true = σ(logit(s)/2)."""
    generator = np.random.default_rng(seed)
    scores = generator.uniform(0.02, 0.98, n)
    truth = 1.0 / (1.0 + np.exp(-0.5 * np.log(scores / (1 - scores))))
    outcomes = (generator.uniform(size=n) < truth).astype(float)
    return scores, outcomes


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_out_of_fold_calibration_brings_buckets_within_five_points(method: str) -> None:
    scores, outcomes = _overconfident(40_000, 1)
    raw = reliability_table(scores, outcomes, 10, 100)
    assert worst_bucket_error_pp(raw) > 10  # badly calibrated before
    folds = np.repeat(np.arange(5), 8000)
    calibrated = cross_fitted(method, scores, outcomes, folds)  # type: ignore[arg-type]
    table = reliability_table(calibrated, outcomes, 10, 100)
    assert worst_bucket_error_pp(table) < 5.0
    assert sum(bucket.count for bucket in table) == 40_000


def test_calibrators_round_trip_through_their_card_form() -> None:
    scores, outcomes = _overconfident(5000, 2)
    for method in ("isotonic", "platt"):
        calibrator = fit_calibrator(method, scores, outcomes)  # type: ignore[arg-type]
        again = Calibrator.from_dict(calibrator.to_dict())
        assert np.array_equal(again.apply(scores), calibrator.apply(scores))
        applied = calibrator.apply(np.array([0.0, 0.5, 1.0]))
        assert (np.diff(applied) >= 0).all() and (applied >= 0).all() and (applied <= 1).all()
    with pytest.raises(DataError):
        Calibrator.from_dict({"method": "magic"})
    with pytest.raises(DataError):
        fit_calibrator("isotonic", np.array([0.5]), np.array([1.0]))


def test_reliability_table_buckets_and_populated_rule() -> None:
    probabilities = np.array([0.05, 0.05, 0.15, 0.95, 1.0])
    outcomes = np.array([0, 1, 0, 1, 1])
    table = reliability_table(probabilities, outcomes, buckets=10, min_count=2)
    assert [b.count for b in table] == [2, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert table[0].error_pp == pytest.approx(45.0) and table[0].populated
    assert not table[1].populated and math.isnan(table[2].error_pp)
    assert worst_bucket_error_pp(table) == pytest.approx(45.0)  # bucket 9: |1 − 0.975| = 2.5 pp
    assert math.isnan(worst_bucket_error_pp(reliability_table(probabilities, outcomes, 10, 100)))
