"""Models (R-RS-2): LightGBM classifier (p_up) and regressor (E[ret]), logistic-regression baseline.

Determinism: LightGBM runs with `deterministic=True`, column-wise histograms, a fixed thread count and
every seed derived from the run seed, so the same data, parameters and seed give the same trees (and the
same model SHA). Inputs are float32, the precision ONNX serves at.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

import numpy as np

from kestrel.config.research import LightGbmParams, LogisticParams


class Classifier(Protocol):
    def fit(self, X: np.ndarray, y: np.ndarray) -> Any: ...  # noqa: N803

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...  # noqa: N803


class Regressor(Protocol):
    def fit(self, X: np.ndarray, y: np.ndarray) -> Any: ...  # noqa: N803

    def predict(self, X: np.ndarray) -> np.ndarray: ...  # noqa: N803


@dataclass(frozen=True, slots=True)
class ModelSpec:
    kind: Literal["lightgbm", "logistic"]
    lightgbm: LightGbmParams
    logistic: LogisticParams
    seed: int

    def with_lightgbm(self, **changes: Any) -> ModelSpec:
        return replace(self, lightgbm=self.lightgbm.model_copy(update=changes))


def _lightgbm_arguments(params: LightGbmParams, seed: int) -> dict[str, Any]:
    return {
        "n_estimators": params.n_estimators,
        "learning_rate": params.learning_rate,
        "num_leaves": params.num_leaves,
        "min_child_samples": params.min_child_samples,
        "colsample_bytree": params.feature_fraction,
        "subsample": params.bagging_fraction,
        "subsample_freq": 1 if params.bagging_fraction < 1.0 else 0,
        "reg_lambda": params.lambda_l2,
        "n_jobs": params.threads,
        "random_state": seed,
        "deterministic": True,
        "force_col_wise": True,
        "verbose": -1,
    }


def make_classifier(spec: ModelSpec) -> Classifier:
    if spec.kind == "logistic":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        model: Classifier = make_pipeline(
            StandardScaler(),
            LogisticRegression(C=spec.logistic.c, max_iter=spec.logistic.max_iter, random_state=spec.seed),
        )
        return model
    import lightgbm

    return lightgbm.LGBMClassifier(objective="binary", **_lightgbm_arguments(spec.lightgbm, spec.seed))


def make_regressor(spec: ModelSpec) -> Regressor:
    import lightgbm

    # Huber keeps the few crash bars from dominating E[ret] (the seeds ask for a robust return loss).
    return lightgbm.LGBMRegressor(objective="huber", alpha=0.02, **_lightgbm_arguments(spec.lightgbm, spec.seed))


def positive_probability(model: Classifier, features: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict_proba(features)[:, 1], dtype=np.float64)
