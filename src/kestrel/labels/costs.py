"""The cost model C(s,t) = fee + slippage(λ, near-touch depth, size) + funding(H) (R-LB-2).

All costs are fractions of notional for a round trip (enter and exit as taker unless said otherwise).
Slippage comes from quantile fits (2.5 / 50 / 97.5 %) over taker orders replayed from recorded trades
and books (`kestrel.labels.slippage`); without a fit, a configured constant per side is used and the
run records that it did so.

    slippage_bps_q(size) = a_q + b_q · participation + c_q · impact
    participation = order notional / near-touch depth notional on the side the order takes
    impact        = Kyle's λ (bps per 1M USDT of signed flow) · order notional / 1M
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from kestrel.core.errors import ConfigurationError, DataError

BPS = 1e-4
QUANTILES = (0.025, 0.5, 0.975)
QuantileName = Literal["p2_5", "p50", "p97_5"]
QUANTILE_BY_NAME: dict[str, float] = {"p2_5": 0.025, "p50": 0.5, "p97_5": 0.975}


@dataclass(frozen=True, slots=True)
class SlippageModel:
    """Linear quantile fits of slippage in bps; `coefficients[q] = (a, b, c)` for q in QUANTILES."""

    coefficients: dict[float, tuple[float, float, float]]
    orders: int = 0  # taker orders the fit used
    source: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if set(self.coefficients) != set(QUANTILES):
            raise DataError(f"slippage model: needs the quantiles {QUANTILES}")

    def bps(self, quantile: float, participation: float, impact: float = 0.0) -> float:
        a, b, c = self.coefficients[quantile]
        return max(0.0, a + b * participation + c * impact)

    def to_dict(self) -> dict[str, object]:
        return {
            "coefficients": {str(q): list(v) for q, v in sorted(self.coefficients.items())},
            "orders": self.orders,
            "source": list(self.source),
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> SlippageModel:
        raw = data.get("coefficients")
        if not isinstance(raw, dict):
            raise DataError("slippage model: 'coefficients' must be a mapping")
        coefficients = {float(q): (float(v[0]), float(v[1]), float(v[2])) for q, v in raw.items()}
        orders = data.get("orders", 0)
        source = data.get("source", ())
        return cls(
            coefficients,
            int(orders) if isinstance(orders, int | float) else 0,
            tuple(str(s) for s in source) if isinstance(source, list | tuple) else (),
        )

    @classmethod
    def fit(
        cls,
        slippage_bps: np.ndarray,
        participation: np.ndarray,
        impact: np.ndarray,
        source: tuple[str, ...] = (),
    ) -> SlippageModel:
        """Quantile regressions (pinball loss, exact LP via HiGHS) of slippage on its two drivers."""
        from sklearn.linear_model import QuantileRegressor

        keep = np.isfinite(slippage_bps) & np.isfinite(participation) & np.isfinite(impact)
        if keep.sum() < 30:
            raise DataError(f"slippage model: {int(keep.sum())} usable taker orders, need at least 30")
        design = np.column_stack([participation[keep], impact[keep]])
        target = slippage_bps[keep]
        coefficients: dict[float, tuple[float, float, float]] = {}
        for quantile in QUANTILES:
            regression = QuantileRegressor(quantile=quantile, alpha=0.0, solver="highs")
            regression.fit(design, target)
            b, c = (float(v) for v in regression.coef_)
            coefficients[quantile] = (float(regression.intercept_), b, c)
        return cls(coefficients, int(keep.sum()), source)


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    """One round trip's costs as fractions of notional."""

    fee: float
    slippage: float
    funding: float

    @property
    def total(self) -> float:
        return self.fee + self.slippage + self.funding


@dataclass(frozen=True, slots=True)
class CostModel:
    """C(s,t) for one symbol. Fees per side in bps; funding rates are fractions per funding interval."""

    taker_fee_bps: float = 5.0
    maker_fee_bps: float = 2.0
    slippage_bps: float = 1.0  # per side, used when no fitted model is given
    slippage_quantile: QuantileName = "p50"
    funding_interval_s: int = 8 * 3600
    slippage_model: SlippageModel | None = field(default=None)
    default_depth_usdt: float = math.nan  # near-touch depth assumed when none is given (bar labels)
    default_kyle_lambda: float = 0.0  # bps per 1M USDT, likewise

    def __post_init__(self) -> None:
        if min(self.taker_fee_bps, self.maker_fee_bps, self.slippage_bps) < 0:
            raise ConfigurationError("costs: fees and slippage must be >= 0 bps")
        if self.funding_interval_s <= 0:
            raise ConfigurationError("costs: funding_interval_s must be > 0")

    def fee(self, maker: bool = False) -> float:
        """Round-trip fee (entry and exit)."""
        return 2.0 * (self.maker_fee_bps if maker else self.taker_fee_bps) * BPS

    def slippage(self, notional: float, depth_usdt: float = math.nan, kyle_lambda: float | None = None) -> float:
        """Round-trip slippage for an order of `notional` against `depth_usdt` near the touch, with
        Kyle's λ in bps per 1M USDT (the model's defaults where not given)."""
        if not depth_usdt > 0:
            depth_usdt = self.default_depth_usdt
        if self.slippage_model is None or not depth_usdt > 0:
            return 2.0 * self.slippage_bps * BPS
        if kyle_lambda is None:
            kyle_lambda = self.default_kyle_lambda
        quantile = QUANTILE_BY_NAME[self.slippage_quantile]
        per_side = self.slippage_model.bps(quantile, notional / depth_usdt, kyle_lambda * notional / 1e6)
        return 2.0 * per_side * BPS

    def funding(self, rate: float, holding_s: float, long: bool = True) -> float:
        """Funding paid over a holding period at `rate` per interval (longs pay positive rates).

        Negative when the position receives funding; NaN rates (spot, unknown) cost nothing."""
        if math.isnan(rate):
            return 0.0
        settlements = holding_s / self.funding_interval_s
        return (rate if long else -rate) * settlements

    def round_trip(
        self,
        notional: float,
        holding_s: float,
        funding_rate: float = math.nan,
        depth_usdt: float = math.nan,
        kyle_lambda: float | None = None,
        maker: bool = False,
    ) -> CostBreakdown:
        """C(s,t) for a long held `holding_s`; funding enters as its absolute value (a cost whichever
        side pays), so C is side-neutral and never rewards a position for funding."""
        return CostBreakdown(
            fee=self.fee(maker),
            slippage=self.slippage(notional, depth_usdt, kyle_lambda),
            funding=abs(self.funding(funding_rate, holding_s)),
        )


def utility(expected_excess_return: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """U = E[excess return] / C (R-LB-3); NaN where the cost is not positive."""
    cost = np.asarray(cost, dtype=np.float64)
    expected = np.asarray(expected_excess_return, dtype=np.float64)
    out = np.full(np.broadcast(expected, cost).shape, math.nan)
    np.divide(expected, cost, out=out, where=cost > 0)
    return out
