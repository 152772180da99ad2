"""ONNX inference latency of the production model: one row at a time, p50 / p99 (target p99 ≤ 200 µs).

Uses the production version of `--model` in `--registry` when there is one; otherwise trains the
research example's model on the shared BTC/ETH klines (no HPO) and registers it in a temporary
registry first. Measures the raw onnxruntime call and the full served prediction (ONNX classifier +
isotonic calibration + ONNX regressor) on real feature rows. Prints JSON.

    ./dev run python benchmarks/onnx_inference.py [--registry data/models --model btc_eth_1h_direction]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from kestrel.config.loading import load_config
from kestrel.core.clock import SimClock
from kestrel.research.registry import ModelRegistry
from kestrel.research.serving import ServedModel

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "research" / "example.yaml"


def _percentiles(samples_ns: list[int]) -> dict[str, float]:
    values = np.asarray(samples_ns) / 1000.0
    return {
        "p50_us": round(float(np.percentile(values, 50)), 2),
        "p99_us": round(float(np.percentile(values, 99)), 2),
        "max_us": round(float(values.max()), 2),
    }


def _trained_registry(folder: Path) -> tuple[ModelRegistry, str]:
    from kestrel.research.train import train

    overrides = {
        "storage": {"data_dir": str(folder / "data")},
        "model": {"registry_dir": str(folder / "models")},
        "research": {"hpo": {"trials": 0}, "shap_rows": 0},
    }
    config = load_config(EXAMPLE, overrides=overrides, env_file=None)
    result = train(config, SimClock(0), out_dir=folder / "run")
    assert result.registered is not None
    registry = ModelRegistry(folder / "models")
    # the benchmark serves it whatever its gates said: this is a latency measurement, not a promotion
    channels = {"production": result.registered.version, "history": [result.registered.version]}
    (folder / "models" / result.registered.name / "channels.json").write_text(json.dumps(channels))
    return registry, result.registered.name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--registry", type=Path, default=Path("data/models"))
    parser.add_argument("--model", default="btc_eth_1h_direction")
    parser.add_argument("--iterations", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        registry = ModelRegistry(args.registry)
        name = args.model
        source = "registry"
        if registry.production(name) is None:
            registry, name = _trained_registry(Path(folder))
            source = "trained on the example config (no HPO)"
        entry = registry.production(name)
        assert entry is not None
        served = ServedModel(entry, threads=1)
        generator = np.random.default_rng(0)
        rows = generator.normal(0, 1, (1000, served.classifier.feature_count)).astype(np.float32)
        onnx_only, served_times = [], []
        for i in range(args.iterations):
            row = rows[i % 1000 : i % 1000 + 1]
            started = time.perf_counter_ns()
            served.classifier.predict_positive(row)
            onnx_only.append(time.perf_counter_ns() - started)
            started = time.perf_counter_ns()
            served.predict(row)
            served_times.append(time.perf_counter_ns() - started)
        warm = args.iterations // 10
        print(
            json.dumps(
                {
                    "benchmark": "onnx_inference",
                    "model": f"{name} v{entry.version}",
                    "source": source,
                    "features": served.classifier.feature_count,
                    "iterations": args.iterations - warm,
                    "classifier_onnx_single_row": _percentiles(onnx_only[warm:]),
                    "served_prediction_single_row": _percentiles(served_times[warm:]),
                    "target_p99_us": 200,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
