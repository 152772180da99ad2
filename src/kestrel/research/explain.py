"""Explanations (R-RS-8) and the run's plots.

Offline: full SHAP (TreeExplainer) over a sample of rows → mean |SHAP| per feature, saved with the run.
Online: `ServedModel.top_contributions` gives the top-K LightGBM contributions of one row (the same
TreeSHAP values, computed by LightGBM itself, cheap enough per decision).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from kestrel.research.calibration import ReliabilityBucket


def shap_summary(model: Any, features: np.ndarray, names: tuple[str, ...], rows: int, seed: int) -> dict[str, Any]:
    """Mean |SHAP| per feature (log-odds units) over `rows` rows drawn with the run's seed."""
    if rows <= 0 or features.shape[0] == 0:
        return {}
    generator = np.random.default_rng(seed)
    take = np.sort(generator.choice(features.shape[0], size=min(rows, features.shape[0]), replace=False))
    with warnings.catch_warnings():
        # shap warns on import (matplotlib colormap API) and about its LightGBM output-format change
        warnings.simplefilter("ignore")
        import shap

        values = np.asarray(shap.TreeExplainer(model).shap_values(features[take]))
    if values.ndim == 3:  # older shap: one array per class
        values = values[-1]
    mean_abs = np.abs(values).mean(axis=0)
    order = np.argsort(-mean_abs, kind="stable")
    return {
        "rows": int(take.size),
        "mean_abs_shap": {names[i]: float(mean_abs[i]) for i in order},
    }


def write_plots(
    directory: Path,
    reliability: list[ReliabilityBucket],
    importance: dict[str, float],
    fold_aucs: list[float | None],
) -> list[str]:
    """reliability.png, importance.png, folds.png; returns the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    figure, axis = plt.subplots(figsize=(5, 5))
    filled = [b for b in reliability if b.count]
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    axis.plot([b.mean_predicted for b in filled], [b.observed_rate for b in filled], color="tab:blue")
    for bucket in filled:
        axis.plot(
            bucket.mean_predicted,
            bucket.observed_rate,
            marker="o",
            color="tab:blue",
            fillstyle="full" if bucket.populated else "none",  # hollow: too few samples to judge
        )
        axis.annotate(str(bucket.count), (bucket.mean_predicted, bucket.observed_rate), fontsize=7)
    axis.set(xlabel="predicted probability", ylabel="observed rate", title="Reliability (out of fold)")
    figure.tight_layout()
    figure.savefig(directory / "reliability.png", dpi=100, metadata={"Software": None})
    plt.close(figure)
    written.append("reliability.png")
    if importance:
        names = list(importance)[:20][::-1]
        figure, axis = plt.subplots(figsize=(6, max(3, 0.3 * len(names))))
        axis.barh(names, [importance[name] for name in names], color="tab:orange")
        axis.set(xlabel="mean |SHAP| (log-odds)", title="Feature importance")
        figure.tight_layout()
        figure.savefig(directory / "importance.png", dpi=100, metadata={"Software": None})
        plt.close(figure)
        written.append("importance.png")
    figure, axis = plt.subplots(figsize=(5, 3))
    axis.bar(range(len(fold_aucs)), [a if a is not None else 0.0 for a in fold_aucs], color="tab:green")
    axis.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    axis.set(xlabel="fold", ylabel="ROC-AUC", title="ROC-AUC per fold")
    figure.tight_layout()
    figure.savefig(directory / "folds.png", dpi=100, metadata={"Software": None})
    plt.close(figure)
    written.append("folds.png")
    return written
