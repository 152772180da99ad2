"""Writing a training run's directory and its registry card (R-RS-6)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

from kestrel.config.loading import masked_dict
from kestrel.config.models import KestrelConfig
from kestrel.core.errors import ConfigurationError
from kestrel.research.calibration import Calibrator, ReliabilityBucket
from kestrel.research.dataset import Dataset
from kestrel.research.explain import write_plots
from kestrel.research.registry import CLASSIFIER_FILE, NATIVE_FILE, REGRESSOR_FILE
from kestrel.research.runs import model_parameters_markdown
from kestrel.research.validation import OutOfFold


def clean(value: object) -> object:
    """JSON-ready: NaN and infinities become null (JSON has no NaN), numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_bytes(value: object) -> bytes:
    return (json.dumps(clean(value), indent=2, sort_keys=True, allow_nan=False) + "\n").encode()


def prepare_run_dir(run_dir: Path) -> None:
    if (run_dir / "metrics.json").exists():
        raise ConfigurationError(f"{run_dir}: already holds a training run (choose another --out)")
    run_dir.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class TrainedArtefacts:
    model_bytes: bytes
    regressor_bytes: bytes
    native_text: bytes
    calibrator: Calibrator
    explanation: dict[str, Any]


def write_run(
    run_dir: Path,
    config: KestrelConfig,
    run: dict[str, Any],
    metrics: dict[str, Any],
    artefacts: TrainedArtefacts,
    dataset: Dataset,
    oof: OutOfFold,
    calibrated: np.ndarray,
    reliability: list[ReliabilityBucket],
) -> None:
    files = {
        "params.yaml": yaml.safe_dump(masked_dict(config), sort_keys=False, allow_unicode=True).encode(),
        "run.json": json_bytes(run),
        "metrics.json": json_bytes(metrics),
        "calibration.json": json_bytes(artefacts.calibrator.to_dict()),
        "shap.json": json_bytes(artefacts.explanation),
        CLASSIFIER_FILE: artefacts.model_bytes,
        REGRESSOR_FILE: artefacts.regressor_bytes,
        NATIVE_FILE: artefacts.native_text,
        "MODEL_PARAMETERS.md": model_parameters_markdown(run, metrics, config).encode(),
    }
    for name, data in files.items():
        (run_dir / name).write_bytes(data)
    pl.DataFrame(
        {
            "ts": dataset.starts,
            "symbol": dataset.symbols,
            "fold": oof.fold_of,
            "p_raw": oof.probabilities,
            "p_calibrated": calibrated,
            "expected_return": oof.returns,
            "target": dataset.target,
            "forward_return": dataset.forward_return,
            "net_return": dataset.net_return,
            "cost": dataset.cost,
            "regime": dataset.regimes,
        }
    ).write_parquet(run_dir / "oof.parquet")
    write_plots(
        run_dir,
        reliability,
        artefacts.explanation.get("mean_abs_shap", {}),
        [fold["roc_auc"] for fold in metrics["folds"]],
    )


def model_card(
    config: KestrelConfig, run: dict[str, Any], metrics: dict[str, Any], calibrator: Calibrator
) -> dict[str, Any]:
    """What a consumer needs to serve the model: features and how to compute them, the calibrator,
    thresholds, and the evidence (metrics, gates, lineage)."""
    research = config.research
    card: dict[str, Any] = {
        "run_id": run["run_id"],
        "created_ns": run["created_ns"],
        "model_sha256": metrics["model_sha256"],
        "regressor_sha256": metrics["regressor_sha256"],
        "feature_names": run["feature_names"],
        "feature_pipeline": {
            "kind": "bars",
            "interval_s": run["interval_s"],
            "bars": research.bars.model_dump(),
            "atr_period": config.feature.atr_period,
            "normalisation": config.feature.normalisation,
            "normalisation_window": run["normalisation_window"],
            "symbols": [item["symbol"] for item in run["data"]],
        },
        "calibration": calibrator.to_dict(),
        "probability_threshold": config.model.probability_threshold,
        "utility_threshold": config.model.utility_threshold,
        "labels": research.labels.model_dump(),
        "metrics": {k: metrics.get(k) for k in ("pr_auc", "roc_auc", "brier", "hit_at_k", "avg_utility", "fpr")},
        "gates": metrics["gates"],
        "code_sha256": run["code_sha256"],
        "params_sha256": run["params_sha256"],
    }
    return clean(card)  # type: ignore[return-value]
