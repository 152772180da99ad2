"""L2 model score (R-SE-3, R-SE-7): calibrated p → size multiplier, ensembles, volatility scaling."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from kestrel.config.models import ScoreBand, StrategyConfig


def size_multiplier_for(probability: float, bands: Sequence[ScoreBand]) -> float:
    """The band's multiplier for `probability` (0 = skip). Bands are in descending order."""
    if not 0.0 <= probability <= 1.0 or math.isnan(probability):
        raise ValueError(f"probability must be within [0, 1], got {probability}")
    for band in bands:
        above = probability >= band.min_probability if band.inclusive else probability > band.min_probability
        if above:
            return band.size_multiplier
    return 0.0


def ensemble_probability(probabilities: Sequence[float], mode: str, weights: Sequence[float] | None = None) -> float:
    """Combine several models' p_up: `weight` = weighted mean; `vote` = share of models voting up (p > 0.5)."""
    if not probabilities:
        raise ValueError("no model probabilities to combine")
    if mode == "vote":
        return sum(1.0 for p in probabilities if p > 0.5) / len(probabilities)
    if mode in ("weight", "none"):
        used = list(weights) if weights is not None else [1.0] * len(probabilities)
        if len(used) != len(probabilities) or any(w < 0 for w in used) or sum(used) <= 0:
            raise ValueError("weights must be non-negative, one per model, not all zero")
        return sum(p * w for p, w in zip(probabilities, used, strict=True)) / sum(used)
    raise ValueError(f"unknown ensemble mode {mode!r}")


def combined_size_multiplier(
    rules_multiplier: float,
    probability: float | None,
    config: StrategyConfig,
    realized_volatility: float | None = None,
) -> float:
    """size_mult = rules × model (× volatility scale), clamped; 0 means skip (R-SE-3).

    Without a model (rules-only mode, or degraded data) the model factor is 1.
    """
    model = 1.0 if probability is None else size_multiplier_for(probability, config.score_bands)
    if model == 0.0 or rules_multiplier == 0.0:
        return 0.0
    multiplier = rules_multiplier * model
    if config.target_volatility is not None and realized_volatility is not None and realized_volatility > 0:
        multiplier *= min(1.0, config.target_volatility / realized_volatility)
    return min(max(multiplier, config.size_multiplier_min), config.size_multiplier_max)


class LogisticScorer:
    """p(up) = σ(intercept + Σ weight × feature): a `ModelScorer` from explicit coefficients.

    For when no registry model is configured but a scored path is still wanted (the decision
    benchmark, a hand-fitted model). A missing or NaN feature counts as 0 (no evidence either way).
    """

    def __init__(self, weights: dict[str, float], intercept: float = 0.0, version: str = "logistic") -> None:
        if not weights:
            raise ValueError("a logistic model needs at least one weight")
        self.weights = tuple(weights.items())
        self.intercept = intercept
        self.version = version

    def predict_probability(self, features: Mapping[str, float]) -> float:
        total = self.intercept
        for name, weight in self.weights:
            value = features.get(name, 0.0)
            if value == value:  # NaN is not equal to itself: skip it
                total += weight * value
        if total >= 0:
            return 1.0 / (1.0 + math.exp(-total))
        exponent = math.exp(total)  # the stable form for negative arguments
        return exponent / (1.0 + exponent)

    @classmethod
    def parse(cls, text: str, intercept: float = 0.0) -> LogisticScorer:
        """From `name=weight,name=weight` (the strategy parameter form)."""
        weights: dict[str, float] = {}
        for item in text.split(","):
            name, sep, value = item.partition("=")
            if not sep or not name.strip():
                raise ValueError(f"model weight {item!r} is not name=number")
            try:
                weights[name.strip()] = float(value)
            except ValueError:
                raise ValueError(f"model weight {item!r} is not name=number") from None
        return cls(weights, intercept)
