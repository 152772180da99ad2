"""Serving registry models (R-RS-7, R-RS-8): ONNX inference plus calibration, hot reload without a
restart, ensembles by vote or weight, online top-K contributions, calibration-drift rollback.

A `ModelConsumer` holds one `ServedModel` and, when asked (`maybe_reload(now_ns)`, driven by the
caller's Clock), checks the registry's production channel; a new version is loaded completely first and
then swapped in with one reference assignment, so a prediction running concurrently finishes on the old
model and the next one uses the new model.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from kestrel.core.errors import DataError
from kestrel.research.calibration import Calibrator, reliability_table, worst_bucket_error_pp
from kestrel.research.onnx_export import OnnxModel
from kestrel.research.registry import CLASSIFIER_FILE, NATIVE_FILE, REGRESSOR_FILE, ModelRegistry, ModelVersion


@dataclass(frozen=True, slots=True)
class Prediction:
    p_up: float  # calibrated probability
    expected_return: float  # E[ret] over the label horizon (NaN without a regressor)
    model_version: int

    def utility(self, cost: float) -> float:
        """U = E[excess return] / C(s,t) (R-LB-3); NaN when the cost is not positive."""
        return self.expected_return / cost if cost > 0 else math.nan


class ServedModel:
    """One registry version, ready to predict."""

    def __init__(self, entry: ModelVersion, threads: int = 1) -> None:
        self.name = entry.name
        self.version = entry.version
        self.card = entry.card
        self.feature_names: tuple[str, ...] = tuple(entry.card.get("feature_names", ()))
        self.classifier = OnnxModel(entry.path / CLASSIFIER_FILE, threads)
        regressor = entry.path / REGRESSOR_FILE
        self.regressor = OnnxModel(regressor, threads) if regressor.exists() else None
        calibration = entry.card.get("calibration")
        self.calibrator = Calibrator.from_dict(calibration) if isinstance(calibration, dict) else None
        self._native_path = entry.path / NATIVE_FILE
        self._booster: Any = None
        if self.feature_names and len(self.feature_names) != self.classifier.feature_count:
            raise DataError(f"model {self.name} v{self.version}: card and ONNX disagree on the feature count")

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        raw = self.classifier.predict_positive(features)
        return self.calibrator.apply(raw) if self.calibrator is not None else raw

    def predict(self, row: np.ndarray) -> Prediction:
        p_up = float(self.probabilities(row)[0])
        expected = float(self.regressor.predict_value(row)[0]) if self.regressor is not None else math.nan
        return Prediction(p_up, expected, self.version)

    def top_contributions(self, row: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        """The k features contributing most to this row's raw score, with signs (LightGBM's own
        additive contributions, TreeSHAP in log-odds units): the online explanation of R-RS-8."""
        if not self._native_path.exists():
            raise DataError(f"model {self.name} v{self.version} has no native model for contributions")
        if self._booster is None:
            import lightgbm

            self._booster = lightgbm.Booster(model_file=str(self._native_path))
        values = np.asarray(self._booster.predict(np.asarray(row, dtype=np.float32).reshape(1, -1), pred_contrib=True))
        contributions = values[0, :-1]  # the last column is the expected value (bias)
        order = np.argsort(-np.abs(contributions), kind="stable")[:k]
        return [(self.feature_names[i], float(contributions[i])) for i in order]


class ModelConsumer:
    """Serves a model's production version and follows promotions and rollbacks without a restart."""

    def __init__(self, registry: ModelRegistry, name: str, threads: int = 1, reload_interval_ns: int = 5_000_000_000):
        self.registry = registry
        self.name = name
        self.threads = threads
        self.reload_interval_ns = reload_interval_ns
        self._next_check_ns = 0
        entry = registry.production(name)
        if entry is None:
            raise DataError(f"model {name!r} has no production version (promote one first)")
        self.model = ServedModel(entry, threads)
        self.reloads = 0

    @property
    def version(self) -> int:
        return self.model.version

    def maybe_reload(self, now_ns: int, force: bool = False) -> bool:
        """Check the production channel at most every reload interval; True when a new version was
        swapped in."""
        if not force and now_ns < self._next_check_ns:
            return False
        self._next_check_ns = now_ns + self.reload_interval_ns
        entry = self.registry.production(self.name)
        if entry is None or entry.version == self.model.version:
            return False
        replacement = ServedModel(entry, self.threads)  # fully loaded before it becomes visible
        self.model = replacement
        self.reloads += 1
        return True

    def predict(self, row: np.ndarray) -> Prediction:
        return self.model.predict(row)


@dataclass
class Ensemble:
    """Several served models combined: `weight` averages calibrated probabilities with weights; `vote`
    gives the weighted share of members whose probability reaches `threshold`."""

    members: list[ServedModel]
    mode: Literal["vote", "weight"] = "weight"
    weights: list[float] = field(default_factory=list)
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if not self.members:
            raise DataError("ensemble: needs at least one model")
        if not self.weights:
            self.weights = [1.0] * len(self.members)
        if len(self.weights) != len(self.members) or min(self.weights) < 0 or sum(self.weights) <= 0:
            raise DataError("ensemble: one non-negative weight per member, not all zero")
        names = {member.feature_names for member in self.members}
        if len(names) != 1:
            raise DataError("ensemble: members must share one feature list")

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        weights = np.asarray(self.weights, dtype=np.float64) / sum(self.weights)
        stacked = np.vstack([member.probabilities(features) for member in self.members])
        if self.mode == "vote":
            stacked = (stacked >= self.threshold).astype(np.float64)
        return np.asarray(weights @ stacked)


class CalibrationDriftMonitor:
    """Live reliability of served probabilities against realised outcomes; `drifted` once a populated
    bucket is off by more than `max_pp` (config.model.drift_rollback_pp) — the trigger to roll back."""

    def __init__(self, max_pp: float = 5.0, buckets: int = 10, min_count: int = 100, capacity: int = 20_000):
        self.max_pp = max_pp
        self.buckets = buckets
        self.min_count = min_count
        self._probabilities: deque[float] = deque(maxlen=capacity)
        self._outcomes: deque[float] = deque(maxlen=capacity)

    def record(self, probability: float, outcome: bool) -> None:
        self._probabilities.append(probability)
        self._outcomes.append(1.0 if outcome else 0.0)

    def worst_error_pp(self) -> float:
        table = reliability_table(
            np.asarray(self._probabilities), np.asarray(self._outcomes), self.buckets, self.min_count
        )
        return worst_bucket_error_pp(table)

    @property
    def drifted(self) -> bool:
        worst = self.worst_error_pp()
        return not math.isnan(worst) and worst > self.max_pp

    def check_and_rollback(self, registry: ModelRegistry, name: str) -> ModelVersion | None:
        """Roll the model back when drifted; returns the version now serving, or None if nothing changed."""
        if not self.drifted:
            return None
        self._probabilities.clear()
        self._outcomes.clear()
        return registry.rollback(name)
