"""Registry, ONNX serving, hot reload, ensembles, drift rollback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kestrel.cli import main
from kestrel.core.errors import DataError
from kestrel.research.calibration import fit_calibrator
from kestrel.research.onnx_export import (
    OnnxModel,
    export_classifier,
    export_regressor,
    float32_exact_booster,
    sha256_hex,
)
from kestrel.research.registry import CLASSIFIER_FILE, NATIVE_FILE, REGRESSOR_FILE, GateError, ModelRegistry
from kestrel.research.serving import CalibrationDriftMonitor, Ensemble, ModelConsumer, ServedModel

NAMES = ("a", "b", "c", "d")


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    generator = np.random.default_rng(seed)
    features = np.round(generator.standard_normal((4000, 4)), 3).astype(np.float32)  # many tied values
    target = (features[:, 0] + 0.5 * features[:, 1] * features[:, 2] + generator.normal(0, 1, 4000) > 0).astype(int)
    returns = 0.01 * features[:, 0] + generator.normal(0, 0.02, 4000)
    return features, target, returns


def _trained(seed: int = 0) -> tuple[Any, Any, np.ndarray]:
    import lightgbm

    features, target, returns = _data(seed)
    common = {"n_estimators": 60, "num_leaves": 15, "deterministic": True, "force_col_wise": True, "n_jobs": 1,
              "random_state": seed, "verbose": -1}  # fmt: skip
    classifier = lightgbm.LGBMClassifier(**common).fit(features, target)
    regressor = lightgbm.LGBMRegressor(objective="huber", alpha=0.02, **common).fit(features, returns)
    return float32_exact_booster(classifier.booster_), float32_exact_booster(regressor.booster_), features


def _register(registry: ModelRegistry, seed: int, passed: bool) -> int:
    classifier, regressor, features = _trained(seed)
    _, target, _ = _data(seed)
    calibrator = fit_calibrator("isotonic", classifier.predict(features), target)
    card = {
        "run_id": f"run-{seed}",
        "feature_names": list(NAMES),
        "calibration": calibrator.to_dict(),
        "metrics": {"roc_auc": 0.6},
        "gates": {"passed": passed, "checks": [{"name": "calibration", "passed": passed}]},
    }
    files = {
        CLASSIFIER_FILE: export_classifier(classifier, 4),
        REGRESSOR_FILE: export_regressor(regressor, 4),
        NATIVE_FILE: classifier.model_to_string().encode(),
    }
    return registry.register("direction", files, card).version


def test_onnx_matches_native_to_1e6_and_export_is_reproducible() -> None:
    classifier, regressor, features = _trained()
    model_bytes = export_classifier(classifier, 4)
    onnx_classifier = OnnxModel(model_bytes)
    onnx_regressor = OnnxModel(export_regressor(regressor, 4))
    assert np.max(np.abs(onnx_classifier.predict_positive(features) - classifier.predict(features))) < 1e-6
    assert np.max(np.abs(onnx_regressor.predict_value(features) - regressor.predict(features))) < 1e-6
    again, _, _ = _trained()
    assert sha256_hex(export_classifier(again, 4)) == sha256_hex(model_bytes) == onnx_classifier.sha256
    with pytest.raises(DataError, match="expects 4 features"):
        onnx_classifier.predict_positive(features[:, :3])


def test_float32_snapping_keeps_native_predictions() -> None:
    import lightgbm

    features, target, _ = _data(3)
    model = lightgbm.LGBMClassifier(n_estimators=40, verbose=-1, n_jobs=1).fit(features, target)
    snapped = float32_exact_booster(model.booster_)
    assert np.array_equal(snapped.predict(features), model.booster_.predict(features))


def test_promotion_needs_the_gates_and_rollback_returns_to_the_last_stable(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    first = _register(registry, 0, passed=True)
    failing = _register(registry, 1, passed=False)
    second = _register(registry, 2, passed=True)
    assert (first, failing, second) == (1, 2, 3)
    with pytest.raises(GateError, match="calibration"):
        registry.promote("direction", failing)
    registry.promote("direction", first)
    registry.promote("direction", second)
    assert [v.status for v in registry.versions("direction")] == ["stable", "candidate", "production"]
    back = registry.rollback("direction")
    assert back.version == first and registry.get("direction", second).status == "rolled_back"
    with pytest.raises(DataError, match="no earlier stable"):
        registry.rollback("direction")
    with pytest.raises(DataError, match="no version 9"):
        registry.get("direction", 9)
    assert registry.names() == ["direction"]


def test_consumer_hot_reloads_without_restart_and_explains(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.promote("direction", _register(registry, 0, passed=True))
    consumer = ModelConsumer(registry, "direction", reload_interval_ns=1_000)
    row = _data(0)[0][:1]
    before = consumer.predict(row)
    assert before.model_version == 1 and 0 <= before.p_up <= 1 and np.isfinite(before.expected_return)
    assert before.utility(0.002) == pytest.approx(before.expected_return / 0.002)
    assert not consumer.maybe_reload(now_ns=0)  # checked: nothing new; next check due at 1000
    registry.promote("direction", _register(registry, 5, passed=True))
    assert not consumer.maybe_reload(now_ns=500)  # not due yet: the consumer keeps serving v1
    assert consumer.version == 1
    assert consumer.maybe_reload(now_ns=2_000)
    after = consumer.predict(row)
    assert after.model_version == 2 and consumer.reloads == 1
    top = consumer.model.top_contributions(row[0], k=2)
    assert len(top) == 2 and {name for name, _ in top} <= set(NAMES)
    assert abs(top[0][1]) >= abs(top[1][1])


def test_ensembles_by_weight_and_vote(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    members = [ServedModel(registry.get("direction", _register(registry, s, True))) for s in (0, 1)]
    features = _data(0)[0][:50]
    p0, p1 = (m.probabilities(features) for m in members)
    weighted = Ensemble(members, "weight", [3, 1]).probabilities(features)
    np.testing.assert_allclose(weighted, 0.75 * p0 + 0.25 * p1)
    vote = Ensemble(members, "vote", threshold=0.5).probabilities(features)
    np.testing.assert_allclose(vote, ((p0 >= 0.5).astype(float) + (p1 >= 0.5)) / 2)
    with pytest.raises(DataError):
        Ensemble(members, "weight", [1.0])


def test_calibration_drift_rolls_back(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.promote("direction", _register(registry, 0, True))
    registry.promote("direction", _register(registry, 1, True))
    monitor = CalibrationDriftMonitor(max_pp=5.0, min_count=50)
    generator = np.random.default_rng(0)
    for p in generator.uniform(0.6, 0.7, 400):
        monitor.record(p, bool(generator.uniform() < p))  # well calibrated
    assert not monitor.drifted and monitor.check_and_rollback(registry, "direction") is None
    for p in generator.uniform(0.6, 0.7, 2000):
        monitor.record(p, bool(generator.uniform() < p - 0.2))  # 20 pp optimistic
    assert monitor.drifted
    rolled = monitor.check_and_rollback(registry, "direction")
    assert rolled is not None and rolled.version == 1


def test_models_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = ModelRegistry(tmp_path)
    good, bad = _register(registry, 0, True), _register(registry, 1, False)
    assert main(["models", "promote", "direction", str(good), "--registry", str(tmp_path)]) == 0
    assert main(["models", "promote", "direction", str(bad), "--registry", str(tmp_path)]) == 1
    assert "failed its promotion gates" in capsys.readouterr().err
    assert main(["models", "list", "--registry", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert "production" in listing and "candidate" in listing
    assert main(["models", "rollback", "direction", "--registry", str(tmp_path)]) == 1
    assert "no earlier stable" in capsys.readouterr().err
    assert main(["models", "promote", "direction", "0", "--registry", str(tmp_path)]) == 2
    assert main(["models", "list", "--registry", str(tmp_path), "--config", "x.yaml"]) == 2
