"""Hyper-parameter search (R-RS-5) with Optuna's TPE sampler, seeded from the run seed.

Each trial trains out of fold through the dataset layer (purged folds, never a shuffled K-fold), applies
cross-fitted calibration, and scores J = α·PR-AUC + β·Hit@TopK + γ·Avg(U) − δ·FPR. The normalisation
window is searched too (the seeds' 256–2048 samples), so a trial may rebuild its dataset; datasets are
cached per window. Without a timeout the search is deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kestrel.config.research import HpoConfig
from kestrel.research.calibration import Method, cross_fitted
from kestrel.research.dataset import Dataset
from kestrel.research.metrics import EvaluationInputs, evaluate, objective
from kestrel.research.models import ModelSpec
from kestrel.research.splits import LeakFreeSplitter
from kestrel.research.validation import out_of_fold

DatasetForWindow = Callable[[int], tuple[Dataset, LeakFreeSplitter]]


@dataclass(frozen=True)
class SearchResult:
    best_params: dict[str, Any]  # LightGBM fields plus "normalisation_window"
    best_value: float
    trials: list[dict[str, Any]]


def score(
    dataset: Dataset,
    splitter: LeakFreeSplitter,
    spec: ModelSpec,
    calibration: Method,
    threshold: float,
    k_fraction: float,
    hpo: HpoConfig,
) -> tuple[float, dict[str, Any]]:
    """J of one parameter set, and the metrics it came from."""
    oof = out_of_fold(dataset, splitter, spec, with_regressor=False)
    tested = oof.tested
    calibrated = cross_fitted(calibration, oof.probabilities[tested], dataset.target[tested], oof.fold_of[tested])
    inputs = EvaluationInputs(
        calibrated,
        dataset.target[tested],
        dataset.forward_return[tested],
        dataset.net_return[tested],
        dataset.cost[tested],
    )
    metrics = evaluate(inputs, threshold, k_fraction)
    return objective(metrics, hpo.alpha, hpo.beta, hpo.gamma, hpo.delta), metrics


def search(
    dataset_for_window: DatasetForWindow,
    spec: ModelSpec,
    hpo: HpoConfig,
    calibration: Method,
    threshold: float,
    k_fraction: float,
    progress: Callable[[int], None] | None = None,
) -> SearchResult:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    records: list[dict[str, Any]] = []

    def trial_objective(trial: optuna.Trial) -> float:
        window = trial.suggest_int("normalisation_window", *hpo.normalisation_window, log=True)
        params = {
            "learning_rate": trial.suggest_float("learning_rate", *hpo.learning_rate, log=True),
            "num_leaves": trial.suggest_int("num_leaves", *hpo.num_leaves),
            "min_child_samples": trial.suggest_int("min_child_samples", *hpo.min_child_samples, log=True),
            "feature_fraction": trial.suggest_float("feature_fraction", *hpo.feature_fraction),
            "n_estimators": trial.suggest_int("n_estimators", *hpo.n_estimators),
        }
        dataset, splitter = dataset_for_window(window)
        value, metrics = score(dataset, splitter, spec.with_lightgbm(**params), calibration, threshold, k_fraction, hpo)
        records.append(
            {
                "number": trial.number,
                "value": value,
                "params": {**params, "normalisation_window": window},
                "metrics": metrics,
            }
        )
        if progress is not None:
            progress(1)
        return value

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=spec.seed))
    study.optimize(trial_objective, n_trials=hpo.trials, timeout=hpo.timeout_s, n_jobs=1)
    best = max(records, key=lambda record: (record["value"], -record["number"]))
    return SearchResult(dict(best["params"]), float(best["value"]), records)
