from __future__ import annotations

import numpy as np
import pytest

from kestrel.research.metrics import (
    EvaluationInputs,
    evaluate,
    false_positive_rate,
    hit_at_k,
    objective,
    significance_tests,
)


def test_hit_at_k_and_fpr() -> None:
    p = np.array([0.9, 0.8, 0.7, 0.2, 0.1])
    y = np.array([1, 0, 1, 0, 1])
    assert hit_at_k(p, y, 0.4) == pytest.approx(0.5)
    assert hit_at_k(p, y, 0.6) == pytest.approx(2 / 3)
    assert false_positive_rate(p, y, 0.5) == pytest.approx(0.5)


def test_evaluate_and_objective() -> None:
    p = np.array([0.9, 0.8, 0.3, 0.2])
    y = np.array([1.0, 1.0, 0.0, 0.0])
    fwd = np.array([0.02, 0.01, -0.01, 0.0])
    inputs = EvaluationInputs(p, y, fwd, fwd - 0.001, np.full(4, 0.002))
    metrics = evaluate(inputs, threshold=0.5, k_fraction=0.5)
    assert metrics["roc_auc"] == 1.0 and metrics["pr_auc"] == 1.0 and metrics["trades"] == 2
    assert metrics["avg_utility"] == pytest.approx((10 + 5) / 2)
    assert metrics["mean_net_return_bps"] == pytest.approx(140.0)
    assert metrics["brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert objective(metrics, 1, 1, 0.1, 0.5) == pytest.approx(1 + 1 + 0.75 - 0)
    one_class = evaluate(EvaluationInputs(p, np.ones(4), fwd, fwd, np.ones(4)), 0.5, 0.5)
    assert one_class["roc_auc"] is None and objective(one_class, 1, 0, 0, 0) == 0.0


def test_significance_finds_a_real_edge_and_controls_false_discoveries() -> None:
    generator = np.random.default_rng(0)
    n = 6000
    regimes = np.array(["flat", "trend", "high_vol"])[generator.integers(0, 3, n)]
    y = generator.integers(0, 2, n).astype(float)
    skill = np.where(regimes == "trend", 0.25 * (y - 0.5), 0.0)  # skill only in trends
    p = np.clip(0.5 + skill + generator.normal(0, 0.1, n), 0, 1)
    fwd = generator.normal(0, 0.01, n) + np.where(regimes == "trend", 0.004 * (2 * y - 1), 0)
    rows = significance_tests(EvaluationInputs(p, y, fwd, fwd, np.full(n, 0.001)), regimes, 0.55, 0.05, 1, 0.05)
    found = {(row["scope"], row["test"]) for row in rows if row["discovery"]}
    assert ("trend", "roc_auc>0.5") in found and ("all", "roc_auc>0.5") in found
    assert not any(scope == "flat" for scope, _ in found)  # no skill there, nothing discovered
    assert all(row["p_adjusted"] >= row["p_value"] for row in rows)
