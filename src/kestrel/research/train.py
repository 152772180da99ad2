"""`kestrel train`: features → labels → purged CV (optionally HPO) → calibrated model → ONNX → registry.

The run directory holds: params.yaml (effective configuration), run.json (run id, SHAs of code, data,
parameters and lock, data slice, stage timings), metrics.json (deterministic: no times, no ids),
oof.parquet (out-of-fold predictions), model.onnx, regressor.onnx, model.txt, calibration.json,
shap.json, plots and MODEL_PARAMETERS.md. The same configuration and seed give the same metrics.json and
the same model SHA.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kestrel.config.models import KestrelConfig
from kestrel.core.clock import Clock
from kestrel.labels.costs import QUANTILE_BY_NAME
from kestrel.labels.slippage import SlippageFit, fit_from_recordings
from kestrel.research.calibration import cross_fitted, fit_calibrator, reliability_table, worst_bucket_error_pp
from kestrel.research.dataset import Dataset
from kestrel.research.explain import shap_summary
from kestrel.research.gates import evaluate_gates
from kestrel.research.hpo import search
from kestrel.research.klines import (
    build_kline_table,
    dataset_from_table,
    embargo_ns_from_config,
    load_kline_data,
)
from kestrel.research.metrics import REGIME_SCOPES, EvaluationInputs, evaluate, significance_tests
from kestrel.research.models import ModelSpec, make_classifier, make_regressor
from kestrel.research.onnx_export import (
    OnnxModel,
    export_classifier,
    export_regressor,
    float32_exact_booster,
    sha256_hex,
)
from kestrel.research.registry import CLASSIFIER_FILE, NATIVE_FILE, REGRESSOR_FILE, ModelRegistry, ModelVersion
from kestrel.research.run_files import TrainedArtefacts, model_card, prepare_run_dir, write_run
from kestrel.research.runs import code_sha, git_commit, lock_sha, new_run_id, params_sha
from kestrel.research.splits import LeakFreeSplitter
from kestrel.research.validation import OutOfFold, out_of_fold

ONNX_PARITY_LIMIT = 1e-6
Bar = Callable[[int], None]


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    run_dir: Path
    metrics: dict[str, Any]
    model_sha256: str
    registered: ModelVersion | None


@contextmanager
def _progress(description: str, total: int, enabled: bool) -> Iterator[Bar]:
    from tqdm import tqdm

    with tqdm(total=total, desc=description, disable=not enabled, leave=False, unit="step") as bar:
        yield bar.update


class _Stopwatch:
    """Stage durations from the injected clock (zero under a SimClock: runs stay reproducible)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.timings_s: dict[str, float] = {}
        self._last = clock.timestamp_ns()

    def lap(self, stage: str) -> None:
        now = self.clock.timestamp_ns()
        self.timings_s[stage] = round((now - self._last) / 1e9, 3)
        self._last = now


def _inputs(dataset: Dataset, probabilities: np.ndarray, mask: np.ndarray) -> EvaluationInputs:
    return EvaluationInputs(
        probabilities[mask],
        dataset.target[mask],
        dataset.forward_return[mask],
        dataset.net_return[mask],
        dataset.cost[mask],
    )


class _Datasets:
    """Datasets per normalisation window (HPO searches it), built from one load of the inputs."""

    def __init__(self, config: KestrelConfig) -> None:
        self.config = config
        self.data = load_kline_data(config)
        self.interval_ns = self.data.interval_s * 1_000_000_000
        self.embargo_ns = embargo_ns_from_config(config, self.data.interval_s)
        recordings = config.research.costs.slippage_recordings
        self.slippage = fit_from_recordings(recordings) if recordings else None
        self._cache: dict[int, tuple[Dataset, LeakFreeSplitter]] = {}

    def get(self, window: int) -> tuple[Dataset, LeakFreeSplitter]:
        if window not in self._cache:
            feature = self.config.feature.model_copy(update={"normalisation_window": window})
            config = self.config.model_copy(update={"feature": feature})
            table, names, _ = build_kline_table(config, self.data, self.slippage)
            dataset = dataset_from_table(table, names, self.embargo_ns)
            self._cache[window] = (dataset, dataset.splitter(self.config.research.cv, self.interval_ns))
        return self._cache[window]


def _evaluate_all(
    config: KestrelConfig, dataset: Dataset, oof: OutOfFold, calibrated: np.ndarray, baseline: np.ndarray
) -> dict[str, Any]:
    research, threshold = config.research, config.model.probability_threshold
    k_fraction = research.metrics.hit_at_k_fraction
    tested = oof.tested
    metrics: dict[str, Any] = evaluate(_inputs(dataset, calibrated, tested), threshold, k_fraction)
    metrics["uncalibrated"] = evaluate(_inputs(dataset, oof.probabilities, tested), threshold, k_fraction)
    metrics["baseline_logistic"] = evaluate(_inputs(dataset, baseline, tested), threshold, k_fraction)
    metrics["folds"] = [
        {
            "fold": fold.number,
            **evaluate(_inputs(dataset, calibrated, oof.fold_of == fold.number), threshold, k_fraction),
        }
        for fold in oof.folds
    ]
    metrics["regimes"] = {
        scope: evaluate(_inputs(dataset, calibrated, tested & (dataset.regimes == scope)), threshold, k_fraction)
        for scope in REGIME_SCOPES[1:]
    }
    metrics["significance"] = significance_tests(
        _inputs(dataset, calibrated, tested),
        dataset.regimes[tested],
        threshold,
        k_fraction,
        research.labels.forward_bars,
        research.metrics.fdr_alpha,
    )
    if oof.returns is not None:
        from scipy.stats import spearmanr

        predicted = oof.returns[tested]
        realised = dataset.forward_return[tested]
        utility = predicted / dataset.cost[tested]
        chosen = (calibrated[tested] >= threshold) & (utility >= config.model.utility_threshold)
        net = dataset.net_return[tested][chosen]
        metrics["regressor"] = {
            "spearman_ic": float(spearmanr(predicted, realised).statistic),
            "rmse": float(np.sqrt(np.mean((predicted - realised) ** 2))),
            "combined_trades": int(chosen.sum()),
            "combined_mean_net_return_bps": float(net.mean() * 1e4) if net.size else None,
        }
    return metrics


def _slippage_source(config: KestrelConfig, fit: SlippageFit | None) -> str:
    costs = config.research.costs
    if fit is None:
        return f"constant {costs.slippage_bps} bps/side"
    quantile = QUANTILE_BY_NAME[costs.slippage_quantile]
    return (
        f"{costs.slippage_quantile} quantile fitted on {fit.model.orders} replayed taker orders "
        f"({', '.join(fit.model.source)}): {fit.per_side_bps(quantile, costs.order_notional_usdt):.4f} bps/side "
        f"at {costs.order_notional_usdt} USDT"
    )


def _search_parameters(
    config: KestrelConfig, datasets: _Datasets, spec: ModelSpec, show_progress: bool
) -> tuple[ModelSpec, int, dict[str, Any] | None]:
    """The model spec and normalisation window to train with, and the HPO record (None without HPO)."""
    research = config.research
    if research.hpo.trials == 0:
        return spec, config.feature.normalisation_window, None
    with _progress("hpo trials", research.hpo.trials, show_progress) as step:
        result = search(
            datasets.get,
            spec,
            research.hpo,
            config.model.calibration,
            config.model.probability_threshold,
            research.metrics.hit_at_k_fraction,
            step,
        )
    best = dict(result.best_params)
    window = int(best.pop("normalisation_window"))
    record = {
        "best_value": result.best_value,
        "best_params": {**best, "normalisation_window": window},
        "trials": [{k: v for k, v in trial.items() if k != "metrics"} for trial in result.trials],
    }
    return spec.with_lightgbm(**best), window, record


def _final_models(spec: ModelSpec, dataset: Dataset) -> tuple[Any, Any]:
    """Classifier and regressor trained on every sample, as float32-exact boosters (see
    `float32_exact_booster`: ONNX then takes exactly the same decisions)."""
    classifier = make_classifier(spec)
    classifier.fit(dataset.features, dataset.target)
    regressor = make_regressor(spec)
    regressor.fit(dataset.features, dataset.forward_return)
    classifier_booster = float32_exact_booster(classifier.booster_)  # type: ignore[attr-defined]
    regressor_booster = float32_exact_booster(regressor.booster_)  # type: ignore[attr-defined]
    return classifier_booster, regressor_booster


def train(config: KestrelConfig, clock: Clock, out_dir: Path | None = None, show_progress: bool = False) -> TrainResult:
    research = config.research
    stopwatch = _Stopwatch(clock)
    params_digest = params_sha(config)
    run_id = new_run_id(clock, params_digest)
    run_dir = out_dir if out_dir is not None else config.storage.data_dir / "runs" / run_id
    prepare_run_dir(run_dir)
    datasets = _Datasets(config)
    spec = ModelSpec("lightgbm", research.lightgbm, research.logistic, config.seed)
    spec, window, hpo_record = _search_parameters(config, datasets, spec, show_progress)
    stopwatch.lap("hpo")
    dataset, splitter = datasets.get(window)
    stopwatch.lap("dataset")
    with _progress("cross-validation", 2 * splitter.get_n_splits(), show_progress) as step:
        oof = out_of_fold(dataset, splitter, spec, with_regressor=True, progress=step)
        logistic = ModelSpec("logistic", spec.lightgbm, spec.logistic, spec.seed)
        baseline_oof = out_of_fold(dataset, splitter, logistic, with_regressor=False, progress=step)
    stopwatch.lap("cross_validation")
    tested = oof.tested
    method = config.model.calibration
    calibrated = np.full(dataset.rows, math.nan)
    calibrated[tested] = cross_fitted(method, oof.probabilities[tested], dataset.target[tested], oof.fold_of[tested])
    baseline = np.full(dataset.rows, math.nan)
    baseline[tested] = cross_fitted(
        method, baseline_oof.probabilities[tested], dataset.target[tested], oof.fold_of[tested]
    )
    metrics = _evaluate_all(config, dataset, oof, calibrated, baseline)
    buckets = reliability_table(
        calibrated[tested],
        dataset.target[tested],
        research.metrics.reliability_buckets,
        research.metrics.min_bucket_count,
    )
    worst = worst_bucket_error_pp(buckets)
    limit = research.gates.calibration_max_pp
    metrics["reliability"] = {
        "method": method,
        "buckets": [bucket.to_dict() for bucket in buckets],
        "worst_error_pp": worst,
        "limit_pp": limit,
        "passed": bool(math.isfinite(worst) and worst <= limit),
    }
    # the served model: trained on every sample; its calibrator on every out-of-fold score
    with _progress("final model", 1, show_progress) as step:
        classifier, regressor = _final_models(spec, dataset)
        step(1)
    calibrator = fit_calibrator(method, oof.probabilities[tested], dataset.target[tested])
    model_bytes = export_classifier(classifier, len(dataset.feature_names))
    regressor_bytes = export_regressor(regressor, len(dataset.feature_names))
    parity = {
        "classifier_max_abs_diff": float(
            np.max(
                np.abs(OnnxModel(model_bytes).predict_positive(dataset.features) - classifier.predict(dataset.features))
            )
        ),
        "regressor_max_abs_diff": float(
            np.max(
                np.abs(OnnxModel(regressor_bytes).predict_value(dataset.features) - regressor.predict(dataset.features))
            )
        ),
        "limit": ONNX_PARITY_LIMIT,
    }
    parity_error = max(parity["classifier_max_abs_diff"], parity["regressor_max_abs_diff"])
    parity["passed"] = parity_error <= ONNX_PARITY_LIMIT
    metrics["onnx_parity"] = parity
    metrics["model_sha256"] = sha256_hex(model_bytes)
    metrics["regressor_sha256"] = sha256_hex(regressor_bytes)
    always_long_bps = float(dataset.net_return[tested].mean() * 1e4)
    metrics["always_long_mean_net_return_bps"] = always_long_bps
    metrics["gates"] = evaluate_gates(
        metrics["folds"], metrics, worst, always_long_bps, parity_error, ONNX_PARITY_LIMIT, research.gates
    )
    if hpo_record is not None:
        metrics["hpo"] = hpo_record
    stopwatch.lap("final_model")
    artefacts = TrainedArtefacts(
        model_bytes=model_bytes,
        regressor_bytes=regressor_bytes,
        native_text=classifier.model_to_string().encode(),
        calibrator=calibrator,
        explanation=shap_summary(classifier, dataset.features, dataset.feature_names, research.shap_rows, config.seed),
    )
    stopwatch.lap("shap")
    run: dict[str, Any] = {
        "run_id": run_id,
        "created_ns": clock.timestamp_ns(),
        "code_sha256": code_sha(),
        "git_commit": git_commit(),
        "params_sha256": params_digest,
        "lock_sha256": lock_sha(),
        "data": datasets.data.lineage,
        "interval_s": datasets.data.interval_s,
        "samples": dataset.rows,
        "feature_names": list(dataset.feature_names),
        "model_params": {"lightgbm": spec.lightgbm.model_dump(), "seed": spec.seed},
        "normalisation_window": window,
        "embargo_bars": datasets.embargo_ns // datasets.interval_ns,
        "slippage_source": _slippage_source(config, datasets.slippage),
        "timings_s": stopwatch.timings_s,
    }
    write_run(run_dir, config, run, metrics, artefacts, dataset, oof, calibrated, buckets)
    registered = None
    if research.register_model:
        registered = ModelRegistry(config.model.registry_dir).register(
            research.model_name,
            {CLASSIFIER_FILE: model_bytes, REGRESSOR_FILE: regressor_bytes, NATIVE_FILE: artefacts.native_text},
            model_card(config, run, metrics, calibrator),
        )
    return TrainResult(run_id, run_dir, metrics, metrics["model_sha256"], registered)
