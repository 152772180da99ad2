"""Promotion gates (R-RS-9, the golden rule): a model may serve only when it is stable across folds,
profitable after costs out of fold — beyond the market's own drift and beyond chance — calibrated, and
served by ONNX exactly as trained."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kestrel.config.research import GateConfig


def _check(name: str, value: float | int | None, limit: str, passed: bool) -> dict[str, Any]:
    shown = None if value is None or (isinstance(value, float) and not math.isfinite(value)) else value
    if isinstance(shown, float):
        shown = float(f"{shown:.6g}")
    return {"name": name, "value": shown, "limit": limit, "passed": bool(passed)}


def evaluate_gates(
    fold_metrics: list[dict[str, Any]],
    overall: dict[str, Any],
    worst_bucket_pp: float,
    always_long_bps: float,
    parity_error: float,
    parity_limit: float,
    config: GateConfig,
) -> dict[str, Any]:
    """Every check with its value, limit and verdict; `passed` when all pass."""
    aucs = np.array([m["roc_auc"] for m in fold_metrics if m.get("roc_auc") is not None], dtype=np.float64)
    stable_share = float((aucs > 0.5).mean()) if aucs.size else 0.0
    auc_std = float(aucs.std()) if aucs.size > 1 else math.nan
    fold_net = [m.get("mean_net_return_bps") for m in fold_metrics]
    profitable_share = float(np.mean([v is not None and v > 0 for v in fold_net])) if fold_net else 0.0
    trades = int(overall.get("trades") or 0)
    net = overall.get("mean_net_return_bps")
    net_value = float(net) if net is not None else math.nan
    significant = any(
        row.get("scope") == "all" and row.get("test") == "net_return>0" and row.get("discovery")
        for row in overall.get("significance", [])
    )
    checks = [
        _check(
            "stability: folds with ROC-AUC > 0.5",
            stable_share,
            f">= {config.min_stable_fold_share}",
            stable_share >= config.min_stable_fold_share,
        ),
        _check(
            "stability: std of fold ROC-AUC",
            auc_std,
            f"<= {config.max_fold_auc_std}",
            math.isfinite(auc_std) and auc_std <= config.max_fold_auc_std,
        ),
        _check(
            "stability: folds whose trades earn net of costs",
            profitable_share,
            f">= {config.min_profitable_fold_share}",
            profitable_share >= config.min_profitable_fold_share,
        ),
        _check("profitability: out-of-fold trades", trades, f">= {config.min_trades}", trades >= config.min_trades),
        _check(
            "profitability: mean net return per trade (bps)",
            net_value,
            f"> {config.min_mean_net_return_bps}",
            math.isfinite(net_value) and net_value > config.min_mean_net_return_bps,
        ),
        _check(
            "calibration: worst populated bucket (pp)",
            worst_bucket_pp,
            f"<= {config.calibration_max_pp}",
            math.isfinite(worst_bucket_pp) and worst_bucket_pp <= config.calibration_max_pp,
        ),
        _check(
            "serving: ONNX matches native (max abs diff)",
            parity_error,
            f"<= {parity_limit}",
            parity_error <= parity_limit,
        ),
    ]
    if config.require_edge_over_always_long:
        edge = net_value - always_long_bps
        checks.append(
            _check("profitability: edge over always-long (bps)", edge, "> 0", math.isfinite(edge) and edge > 0)
        )
    if config.require_significant_profit:
        checks.append(_check("profitability: net return > 0 is an FDR discovery", int(significant), "= 1", significant))
    return {"passed": all(check["passed"] for check in checks), "checks": checks}
