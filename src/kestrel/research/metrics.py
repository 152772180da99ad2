"""Evaluation metrics (R-RS-4): PR-AUC, ROC-AUC, Brier, Hit@TopK, average utility, FPR, net return;
stratified by regime (flat / trend / high-vol), with one-sided significance tests under
Benjamini–Hochberg false-discovery-rate control.

A "trade" is a sample whose calibrated probability reaches τ (a long entry). Utility of a trade is its
realised forward return over C(s,t) (R-LB-3); its net return subtracts fees, slippage and funding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

REGIME_SCOPES = ("all", "flat", "trend", "high_vol")


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def hit_at_k(probabilities: np.ndarray, outcomes: np.ndarray, fraction: float) -> float:
    """Share of positives among the top ⌈fraction·n⌉ scores (ties broken by position, stably)."""
    n = probabilities.shape[0]
    if n == 0:
        return math.nan
    k = max(1, math.ceil(fraction * n))
    top = np.argsort(-probabilities, kind="stable")[:k]
    return float(outcomes[top].mean())


def false_positive_rate(probabilities: np.ndarray, outcomes: np.ndarray, threshold: float) -> float:
    negatives = outcomes == 0
    if not negatives.any():
        return math.nan
    return float((probabilities[negatives] >= threshold).mean())


@dataclass(frozen=True, slots=True)
class EvaluationInputs:
    probabilities: np.ndarray  # calibrated p_up
    outcomes: np.ndarray  # 0/1 target
    forward_return: np.ndarray
    net_return: np.ndarray
    cost: np.ndarray

    def subset(self, mask: np.ndarray) -> EvaluationInputs:
        return EvaluationInputs(
            self.probabilities[mask],
            self.outcomes[mask],
            self.forward_return[mask],
            self.net_return[mask],
            self.cost[mask],
        )


def evaluate(inputs: EvaluationInputs, threshold: float, k_fraction: float) -> dict[str, float | int | None]:
    """Every metric of one sample set (None where undefined, e.g. one class only)."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    p, y = inputs.probabilities, inputs.outcomes
    n = int(y.shape[0])
    both_classes = n > 0 and 0 < y.sum() < n
    trades = p >= threshold
    utility = inputs.forward_return[trades] / inputs.cost[trades]
    return {
        "samples": n,
        "base_rate": _finite(float(y.mean())) if n else None,
        "pr_auc": _finite(average_precision_score(y, p)) if both_classes else None,
        "roc_auc": _finite(roc_auc_score(y, p)) if both_classes else None,
        "brier": _finite(brier_score_loss(y, p)) if n else None,
        "hit_at_k": _finite(hit_at_k(p, y, k_fraction)),
        "fpr": _finite(false_positive_rate(p, y, threshold)),
        "trades": int(trades.sum()),
        "avg_utility": _finite(float(utility.mean())) if trades.any() else None,
        "mean_net_return_bps": _finite(float(inputs.net_return[trades].mean() * 1e4)) if trades.any() else None,
    }


def objective(metrics: dict[str, float | int | None], alpha: float, beta: float, gamma: float, delta: float) -> float:
    """J = α·PR-AUC + β·Hit@TopK + γ·Avg(U) − δ·FPR (R-RS-5); undefined parts count as 0, no trades
    as utility 0 and FPR 0 (a model that never trades earns nothing and risks nothing)."""

    def value(name: str) -> float:
        item = metrics.get(name)
        return float(item) if isinstance(item, int | float) and math.isfinite(item) else 0.0

    return alpha * value("pr_auc") + beta * value("hit_at_k") + gamma * value("avg_utility") - delta * value("fpr")


def significance_tests(
    inputs: EvaluationInputs, regimes: np.ndarray, threshold: float, k_fraction: float, overlap: int, fdr_alpha: float
) -> list[dict[str, object]]:
    """One-sided tests per scope (all samples and each regime), FDR-controlled together:
    - roc_auc > 0.5: Mann–Whitney U of scores of positives vs negatives;
    - hit_at_k > base rate: exact binomial test;
    - mean net return of trades > 0: t-test with the sample count divided by `overlap` (the label
      horizon in bars), because overlapping forward returns are not independent.
    Each row has the statistic, raw p-value, BH-adjusted p-value and whether it is a discovery."""
    from scipy import stats

    rows: list[dict[str, object]] = []
    for scope in REGIME_SCOPES:
        part = inputs if scope == "all" else inputs.subset(regimes == scope)
        p, y = part.probabilities, part.outcomes
        positives, negatives = p[y == 1], p[y == 0]
        if positives.size and negatives.size:
            test = stats.mannwhitneyu(positives, negatives, alternative="greater")
            auc = float(test.statistic) / (positives.size * negatives.size)
            rows.append({"scope": scope, "test": "roc_auc>0.5", "statistic": auc, "p_value": float(test.pvalue)})
        if y.size:
            k = max(1, math.ceil(k_fraction * y.size))
            hits = round(hit_at_k(p, y, k_fraction) * k)
            binomial = stats.binomtest(hits, k, float(y.mean()), alternative="greater")
            rows.append({"scope": scope, "test": "hit_at_k>base", "statistic": hits / k, "p_value": binomial.pvalue})
        returns = part.net_return[p >= threshold]
        if returns.size >= 3 and returns.std() > 0:
            effective = max(2.0, returns.size / max(1, overlap))
            t = returns.mean() / (returns.std(ddof=1) / math.sqrt(effective))
            p_value = float(stats.t.sf(t, df=effective - 1))
            rows.append({"scope": scope, "test": "net_return>0", "statistic": float(t), "p_value": p_value})
    if rows:
        adjusted = stats.false_discovery_control([float(row["p_value"]) for row in rows], method="bh")  # type: ignore[arg-type]
        for row, value in zip(rows, adjusted, strict=True):
            row["p_adjusted"] = float(value)
            row["discovery"] = bool(value <= fdr_alpha)
    return rows
