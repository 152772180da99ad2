"""Labels net of costs for a bar series: the targets a model is trained on (R-LB-1..3).

Per sample (decision at the close of bar i, long entry at that close):
- cost = C(s,t): round-trip fee + slippage at the configured order notional + |expected funding| over
  the forward horizon, the funding expectation being the last rate settled strictly before the decision;
- fwd_net_long = fwd_return − fee − slippage − funding actually settled while the trade was open;
- y_up = 1 when the upper barrier was hit first and the barrier return beats the cost, else 0;
- direction = sign of fwd_return beyond ±cost (0 inside the cost band); magnitude = |fwd_return| − cost;
- utility_long = fwd_return / cost: the realised U of a long (R-LB-3).
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from kestrel.labels.barrier import BarrierSpec, triple_barrier_labels
from kestrel.labels.costs import CostModel


def _funding_columns(
    decision_ns: np.ndarray, funding: pl.DataFrame | None, holding_ns: int
) -> tuple[np.ndarray, np.ndarray]:
    """(last rate settled strictly before each decision, Σ rates settled in (decision, decision+hold])."""
    n = decision_ns.shape[0]
    if funding is None or funding.height == 0:
        return np.full(n, math.nan), np.zeros(n)
    times = funding["ts"].cast(pl.Int64).to_numpy()
    rates = funding["funding_rate"].cast(pl.Float64).to_numpy()
    before = np.searchsorted(times, decision_ns, side="left") - 1
    last_rate = np.where(before >= 0, rates[np.maximum(before, 0)], math.nan)
    cumulative = np.concatenate([[0.0], np.cumsum(rates)])
    start = np.searchsorted(times, decision_ns, side="right")
    stop = np.searchsorted(times, decision_ns + holding_ns, side="right")
    return last_rate, cumulative[stop] - cumulative[start]


def build_bar_labels(
    bars: pl.DataFrame,
    atr: np.ndarray,
    interval_s: int,
    spec: BarrierSpec,
    costs: CostModel,
    order_notional_usdt: float,
    funding: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Gross and net labels for every bar (null where the horizon runs past the data)."""
    frame = triple_barrier_labels(bars, atr, spec, interval_s)
    decision = frame["ts"].to_numpy()
    holding_s = spec.forward_bars * interval_s
    last_rate, settled = _funding_columns(decision, funding, holding_s * 1_000_000_000)
    fee = costs.fee()
    slippage = costs.slippage(order_notional_usdt)
    expected_funding = np.array([abs(costs.funding(rate, holding_s)) for rate in last_rate])
    cost = fee + slippage + expected_funding
    fwd = frame["fwd_return"].to_numpy().astype(np.float64)  # nulls → NaN
    tb_return = frame["tb_return"].to_numpy().astype(np.float64)
    tb_label = frame["tb_label"].to_numpy().astype(np.float64)
    with np.errstate(invalid="ignore"):
        y_up = np.where(np.isnan(tb_label), math.nan, ((tb_label > 0) & (tb_return - cost > 0)).astype(np.float64))
        direction = np.where(np.isnan(fwd), math.nan, np.sign(fwd) * (np.abs(fwd) > cost))
        utility_long = np.where(cost > 0, fwd / cost, math.nan)
    return frame.with_columns(
        pl.Series("funding_rate_last", last_rate),
        pl.Series("cost_fee", np.full(decision.shape[0], fee)),
        pl.Series("cost_slippage", np.full(decision.shape[0], slippage)),
        pl.Series("cost_funding", expected_funding),
        pl.Series("cost", cost),
        pl.Series("fwd_net_long", fwd - fee - slippage - settled),
        pl.Series("y_up", y_up),
        pl.Series("direction", direction),
        pl.Series("magnitude", np.abs(fwd) - cost),
        pl.Series("utility_long", utility_long),
    ).fill_nan(None)
