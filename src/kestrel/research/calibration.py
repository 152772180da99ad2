"""Probability calibration fitted out of fold (R-RS-3): Platt scaling or isotonic regression.

The model's out-of-fold scores are calibrated by *cross-fitting*: the calibrator applied to fold k was
fitted on the other folds' out-of-fold scores only, so the reliability table judges calibration on
samples neither the model nor the calibrator saw. The calibrator shipped with the model is then fitted
on all out-of-fold scores. A calibrator is a small table (isotonic knots or Platt's two numbers) stored
in the model card and applied with numpy next to the ONNX session.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from kestrel.core.errors import DataError

Method = Literal["isotonic", "platt"]
_EPSILON = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    clipped = np.clip(p, _EPSILON, 1.0 - _EPSILON)
    return np.asarray(np.log(clipped / (1.0 - clipped)))


@dataclass(frozen=True)
class Calibrator:
    method: Method
    knots_x: tuple[float, ...] = field(default=())  # isotonic: increasing raw scores
    knots_y: tuple[float, ...] = field(default=())  # isotonic: calibrated probabilities
    slope: float = 1.0  # platt: p = sigmoid(slope · logit(s) + intercept)
    intercept: float = 0.0

    def apply(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float64)
        if self.method == "isotonic":
            # np.interp clips outside the knots, as scikit-learn's out_of_bounds="clip"
            return np.asarray(np.interp(scores, np.asarray(self.knots_x), np.asarray(self.knots_y)))
        return np.asarray(1.0 / (1.0 + np.exp(-(self.slope * _logit(scores) + self.intercept))))

    def to_dict(self) -> dict[str, object]:
        if self.method == "isotonic":
            return {"method": "isotonic", "knots_x": list(self.knots_x), "knots_y": list(self.knots_y)}
        return {"method": "platt", "slope": self.slope, "intercept": self.intercept}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Calibrator:
        method = data.get("method")
        if method == "isotonic":
            xs, ys = data.get("knots_x"), data.get("knots_y")
            if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys) or not xs:
                raise DataError("calibrator: isotonic needs equal, non-empty knots_x and knots_y")
            return cls("isotonic", tuple(float(x) for x in xs), tuple(float(y) for y in ys))
        if method == "platt":
            slope, intercept = data.get("slope"), data.get("intercept")
            if not isinstance(slope, int | float) or not isinstance(intercept, int | float):
                raise DataError("calibrator: platt needs numeric slope and intercept")
            return cls("platt", slope=float(slope), intercept=float(intercept))
        raise DataError(f"calibrator: unknown method {method!r}")


def _quantile_bins(scores: np.ndarray, outcomes: np.ndarray, min_samples: int) -> tuple[np.ndarray, ...]:
    """Scores sorted into equal-count bins of at least `min_samples`: (mean score, mean outcome, count)."""
    order = np.argsort(scores, kind="stable")
    bins = max(1, scores.size // min_samples)
    groups = np.array_split(order, bins)
    return (
        np.array([scores[g].mean() for g in groups]),
        np.array([outcomes[g].mean() for g in groups]),
        np.array([g.size for g in groups], dtype=np.float64),
    )


def fit_calibrator(method: Method, scores: np.ndarray, outcomes: np.ndarray, min_bin_samples: int = 200) -> Calibrator:
    """Fit a calibrator. Isotonic regression runs on equal-count score bins of `min_bin_samples`
    (weighted by their counts): plain isotonic regression fits single extreme samples exactly and maps
    a tail score to 0 or 1 from one observation, which new data then contradicts by tens of points."""
    scores = np.asarray(scores, dtype=np.float64)
    outcomes = np.asarray(outcomes, dtype=np.float64)
    if scores.shape != outcomes.shape or scores.size < 2:
        raise DataError("calibration: needs matching score and outcome arrays of at least two samples")
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        bin_scores, bin_rates, bin_counts = _quantile_bins(scores, outcomes, min_bin_samples)
        isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        isotonic.fit(bin_scores, bin_rates, sample_weight=bin_counts)
        return Calibrator(
            "isotonic",
            tuple(float(x) for x in isotonic.X_thresholds_),
            tuple(float(y) for y in isotonic.y_thresholds_),
        )
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        # A very weak penalty: Platt's fit is a plain 1-D logistic regression on the score's logit.
        logistic = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(scores).reshape(-1, 1), outcomes)
        return Calibrator("platt", slope=float(logistic.coef_[0, 0]), intercept=float(logistic.intercept_[0]))
    raise DataError(f"calibration: unknown method {method!r}")


def cross_fitted(method: Method, scores: np.ndarray, outcomes: np.ndarray, fold_of: np.ndarray) -> np.ndarray:
    """Calibrated out-of-fold scores: fold k's calibrator was fitted on every other fold only."""
    calibrated = np.full(scores.shape, math.nan)
    for fold in np.unique(fold_of[fold_of >= 0]):
        inside = fold_of == fold
        others = (fold_of >= 0) & ~inside
        calibrated[inside] = fit_calibrator(method, scores[others], outcomes[others]).apply(scores[inside])
    return calibrated


@dataclass(frozen=True, slots=True)
class ReliabilityBucket:
    low: float
    high: float
    count: int
    mean_predicted: float
    observed_rate: float
    populated: bool

    @property
    def error_pp(self) -> float:
        """|observed − predicted| in percentage points (NaN for an empty bucket)."""
        return abs(self.observed_rate - self.mean_predicted) * 100.0 if self.count else math.nan

    def to_dict(self) -> dict[str, object]:
        return {
            "low": self.low,
            "high": self.high,
            "count": self.count,
            "mean_predicted": None if math.isnan(self.mean_predicted) else self.mean_predicted,
            "observed_rate": None if math.isnan(self.observed_rate) else self.observed_rate,
            "error_pp": None if math.isnan(self.error_pp) else self.error_pp,
            "populated": self.populated,
        }


def reliability_table(
    probabilities: np.ndarray, outcomes: np.ndarray, buckets: int = 10, min_count: int = 100
) -> list[ReliabilityBucket]:
    """Equal-width buckets over [0, 1]; a bucket is populated when it holds at least `min_count`
    samples (below that its observed rate is mostly noise: ±5 pp needs ~400 samples at 2σ)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    outcomes = np.asarray(outcomes, dtype=np.float64)
    keep = np.isfinite(probabilities)
    probabilities, outcomes = probabilities[keep], outcomes[keep]
    index = np.minimum((probabilities * buckets).astype(np.int64), buckets - 1)
    table = []
    for bucket in range(buckets):
        inside = index == bucket
        count = int(inside.sum())
        table.append(
            ReliabilityBucket(
                low=bucket / buckets,
                high=(bucket + 1) / buckets,
                count=count,
                mean_predicted=float(probabilities[inside].mean()) if count else math.nan,
                observed_rate=float(outcomes[inside].mean()) if count else math.nan,
                populated=count >= min_count,
            )
        )
    return table


def worst_bucket_error_pp(table: list[ReliabilityBucket]) -> float:
    """The largest error over populated buckets (NaN when none is populated)."""
    errors = [bucket.error_pp for bucket in table if bucket.populated]
    return max(errors) if errors else math.nan
