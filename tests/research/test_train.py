"""`kestrel train` end to end on the shared BTC/ETH klines: run directory, determinism, registry, CLI."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from kestrel.cli import main
from kestrel.config.loading import load_config
from kestrel.core.clock import SimClock
from kestrel.features.online import OnlineKlineFeatures
from kestrel.research.calibration import ReliabilityBucket, worst_bucket_error_pp
from kestrel.research.onnx_export import OnnxModel
from kestrel.research.registry import ModelRegistry
from kestrel.research.train import train

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "research" / "example.yaml"
RUN_FILES = {
    "params.yaml", "run.json", "metrics.json", "calibration.json", "shap.json", "model.onnx", "regressor.onnx",
    "model.txt", "MODEL_PARAMETERS.md", "oof.parquet", "reliability.png", "importance.png", "folds.png",
}  # fmt: skip


def _small(tmp_path: Path, **research: Any) -> dict[str, Any]:
    """The example, cut to each symbol's last 2600 bars and small models, writing under tmp_path."""
    overrides: dict[str, Any] = {
        "storage": {"data_dir": str(tmp_path / "data")},
        "model": {"registry_dir": str(tmp_path / "models")},
        "feature": {"normalisation_window": 256},
        "research": {
            "data": {"last_bars": 2600},
            "bars": {"rv_percentile_lookback": 240},
            "cv": {"folds": 3},
            "lightgbm": {"n_estimators": 40, "min_child_samples": 50},
            "hpo": {"trials": 0},
            "shap_rows": 200,
            **research,
        },
    }
    return overrides


def _train(tmp_path: Path, out: str, **research: Any) -> Any:
    config = load_config(EXAMPLE, overrides=_small(tmp_path, **research), env_file=None)
    return train(config, SimClock(1_763_000_000_000_000_000), out_dir=tmp_path / out)


def test_train_writes_a_complete_traceable_run(tmp_path: Path, shared_data: Path) -> None:
    result = _train(tmp_path, "run")
    assert {p.name for p in result.run_dir.iterdir()} >= RUN_FILES
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    for name in ("pr_auc", "roc_auc", "brier", "hit_at_k", "avg_utility", "fpr", "reliability", "gates"):
        assert name in metrics
    assert 0.3 < metrics["roc_auc"] < 0.7 and 0 < metrics["brier"] < 0.3
    assert len(metrics["folds"]) == 3 and set(metrics["regimes"]) == {"flat", "trend", "high_vol"}
    assert metrics["onnx_parity"]["classifier_max_abs_diff"] <= 1e-6
    assert metrics["onnx_parity"]["regressor_max_abs_diff"] <= 1e-6
    buckets = metrics["reliability"]["buckets"]
    assert len(buckets) == 10 and sum(b["count"] for b in buckets) == metrics["samples"]
    run = json.loads((result.run_dir / "run.json").read_text())
    assert run["run_id"] == result.run_id and len(run["code_sha256"]) == 64 and len(run["params_sha256"]) == 64
    assert [item["symbol"] for item in run["data"]] == ["BTCUSDT", "ETHUSDT"]
    assert all(len(item["sha256"]) == 64 and item["rows"] == 2600 for item in run["data"])
    assert run["embargo_bars"] == 24
    document = (result.run_dir / "MODEL_PARAMETERS.md").read_text()
    assert result.run_id in document and run["code_sha256"] in document and "Promotion gates" in document
    assert yaml.safe_load((result.run_dir / "params.yaml").read_text())["research"]["cv"]["folds"] == 3
    # the registered version serves what the run measured
    entry = ModelRegistry(tmp_path / "models").get("btc_eth_1h_direction", 1)
    assert entry.status == "candidate" and entry.card["model_sha256"] == result.model_sha256
    assert OnnxModel(entry.path / "model.onnx").sha256 == result.model_sha256
    online = OnlineKlineFeatures.from_card(entry.card)  # a consumer rebuilds the exact feature rows
    assert online.names == entry.card["feature_names"] and online.symbols == ["BTCUSDT", "ETHUSDT"]


def test_same_seed_same_metrics_and_model_sha(tmp_path: Path, shared_data: Path) -> None:
    first = _train(tmp_path, "first")
    second = _train(tmp_path, "second")
    assert (first.run_dir / "metrics.json").read_bytes() == (second.run_dir / "metrics.json").read_bytes()
    assert first.model_sha256 == second.model_sha256
    assert (first.run_dir / "model.onnx").read_bytes() == (second.run_dir / "model.onnx").read_bytes()
    other_seed = load_config(EXAMPLE, overrides={**_small(tmp_path), "seed": 7}, env_file=None)
    third = train(other_seed, SimClock(0), out_dir=tmp_path / "third")
    assert third.model_sha256 != first.model_sha256


def test_hpo_and_walk_forward(tmp_path: Path, shared_data: Path) -> None:
    result = _train(
        tmp_path,
        "hpo",
        hpo={"trials": 2, "n_estimators": [20, 40], "normalisation_window": [256, 300]},
        cv={"scheme": "walk_forward", "folds": 3},
    )
    record = result.metrics["hpo"]
    assert len(record["trials"]) == 2 and 256 <= record["best_params"]["normalisation_window"] <= 300
    assert max(t["value"] for t in record["trials"]) == record["best_value"]
    run = json.loads((result.run_dir / "run.json").read_text())
    assert result.metrics["samples"] == sum(f["samples"] for f in result.metrics["folds"])
    assert run["samples"] > result.metrics["samples"]  # the first block only trains, it is never tested


def test_calibration_gate_is_reported_truthfully(tmp_path: Path, shared_data: Path) -> None:
    """Acceptance: out-of-fold isotonic calibration keeps every populated bucket within 5 pp, or the run
    says it failed the gate — checked on the run's own reliability table."""
    result = _train(tmp_path, "calibration")
    reliability = result.metrics["reliability"]
    table = [
        ReliabilityBucket(
            b["low"], b["high"], b["count"], b["mean_predicted"] or np.nan, b["observed_rate"] or np.nan, b["populated"]
        )
        for b in reliability["buckets"]
    ]
    worst = worst_bucket_error_pp(table)
    assert reliability["passed"] == (worst <= 5.0)
    check = next(c for c in result.metrics["gates"]["checks"] if c["name"].startswith("calibration"))
    assert check["passed"] == reliability["passed"]
    if not reliability["passed"]:
        assert result.metrics["gates"]["passed"] is False


def test_train_cli_and_bad_input(tmp_path: Path, shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = yaml.safe_load(EXAMPLE.read_text())
    for section, values in _small(tmp_path).items():
        config.setdefault(section, {})
        for key, value in values.items():
            if isinstance(value, dict):
                config[section].setdefault(key, {}).update(value)
            else:
                config[section][key] = value
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "cli"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "pr_auc=" in out and "calibration (isotonic, out of fold)" in out and "registered" in out
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "cli"), "--no-progress"]) == 2
    assert "already holds a training run" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2
    config["research"]["cv"]["folds"] = 1
    path.write_text(yaml.safe_dump(config))
    assert main(["train", "--config", str(path)]) == 2
    assert "research.cv.folds" in capsys.readouterr().err
    config["research"]["cv"]["folds"] = 3
    config["research"]["data"]["klines"][0]["path"] = "shared:nope.feather"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", "--config", str(path), "--no-progress"]) == 1
    assert "nope.feather: no such file" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(900)  # the budget is asserted below; the harness timeout only guards against hangs
def test_example_trains_end_to_end_in_under_five_minutes(tmp_path: Path, shared_data: Path) -> None:
    overrides = {"storage": {"data_dir": str(tmp_path / "data")}, "model": {"registry_dir": str(tmp_path / "models")}}
    config = load_config(EXAMPLE, overrides=overrides, env_file=None)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    result = train(config, SimClock(0), out_dir=tmp_path / "example")
    elapsed = time.perf_counter() - started
    print(f"kestrel train on the example: {elapsed:.0f} s (load average {load_before:.1f})")
    # The 5-minute budget is for this machine when it is not shared: on an oversubscribed machine
    # (other test runs, builds) wall time measures the contention, not the pipeline.
    if load_before < (os.cpu_count() or 1):
        assert elapsed < 300, f"kestrel train on the example took {elapsed:.0f} s"
    metrics = result.metrics
    assert metrics["samples"] > 100_000 and metrics["onnx_parity"]["passed"]
    assert metrics["reliability"]["passed"] == (metrics["reliability"]["worst_error_pp"] <= 5.0)
    assert ModelRegistry(tmp_path / "models").get("btc_eth_1h_direction", 1).card["model_sha256"] == result.model_sha256
