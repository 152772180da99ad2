"""The cost model, utility, and the net-of-cost labels on real klines and funding."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from kestrel.core.errors import ConfigurationError, DataError
from kestrel.features.bars import BarSpec, compute_bar_features
from kestrel.features.io import load_funding, load_klines
from kestrel.labels.barrier import BarrierSpec
from kestrel.labels.build import build_bar_labels
from kestrel.labels.costs import QUANTILES, CostModel, SlippageModel, utility


def test_round_trip_costs() -> None:
    model = CostModel(taker_fee_bps=5, maker_fee_bps=2, slippage_bps=1.5, funding_interval_s=8 * 3600)
    breakdown = model.round_trip(notional=200, holding_s=24 * 3600, funding_rate=0.0001)
    assert breakdown.fee == pytest.approx(10e-4) and breakdown.slippage == pytest.approx(3e-4)
    assert breakdown.funding == pytest.approx(3e-4) and breakdown.total == pytest.approx(16e-4)
    assert model.funding(-0.0002, 8 * 3600) == pytest.approx(-0.0002)  # longs receive negative funding
    assert model.funding(0.0002, 8 * 3600, long=False) == pytest.approx(-0.0002)
    assert model.round_trip(200, 3600, math.nan).funding == 0.0
    assert model.round_trip(200, 3600, maker=True).fee == pytest.approx(4e-4)
    with pytest.raises(ConfigurationError):
        CostModel(taker_fee_bps=-1)


def test_slippage_quantile_fit_recovers_the_quantiles() -> None:
    generator = np.random.default_rng(5)
    participation = generator.uniform(0, 2, 4000)
    impact = generator.uniform(0, 1, 4000)
    noise = generator.normal(0, 1, 4000)
    slippage = 0.5 + 2.0 * participation + 1.0 * impact + noise
    model = SlippageModel.fit(slippage, participation, impact, ("synthetic",))
    a, b, c = model.coefficients[0.5]
    assert a == pytest.approx(0.5, abs=0.15) and b == pytest.approx(2.0, abs=0.15) and c == pytest.approx(1.0, abs=0.2)
    assert model.coefficients[0.025][0] == pytest.approx(0.5 - 1.96, abs=0.25)
    assert model.coefficients[0.975][0] == pytest.approx(0.5 + 1.96, abs=0.25)
    assert model.bps(0.025, 0, 0) < model.bps(0.5, 0, 0) < model.bps(0.975, 0, 0)
    assert SlippageModel.from_dict(model.to_dict()) == model
    costed = CostModel(slippage_model=model, slippage_quantile="p97_5")
    assert costed.slippage(100, depth_usdt=100) == pytest.approx(2 * model.bps(0.975, 1.0) * 1e-4)
    assert costed.slippage(100) == pytest.approx(2 * costed.slippage_bps * 1e-4)  # no depth known: constant
    with pytest.raises(DataError, match="usable"):
        SlippageModel.fit(np.ones(5), np.ones(5), np.ones(5))
    assert set(model.coefficients) == set(QUANTILES)


def test_utility() -> None:
    assert utility(np.array([0.002, -0.001, 0.001]), np.array([0.001, 0.001, 0.0]))[:2].tolist() == [2.0, -1.0]
    assert math.isnan(utility(np.array([0.001]), np.array([0.0]))[0])


def test_net_labels_on_real_klines_and_funding(shared_data: Path) -> None:
    bars, interval = load_klines(shared_data / "freqtrade_userdata_roshan7869/futures/BTC_USDT_USDT-1h-futures.feather")
    bars = bars.tail(3000)
    funding = load_funding(shared_data / "freqtrade_userdata_roshan7869/futures/BTC_USDT_USDT-1h-funding_rate.feather")
    atr = compute_bar_features(bars, BarSpec())["atr_14"].fill_null(math.nan).to_numpy()
    model = CostModel(taker_fee_bps=5, slippage_bps=1)
    labels = build_bar_labels(bars, atr, interval, BarrierSpec(24, 2, 2, 24), model, 200, funding)
    row = labels.filter(pl.col("y_up").is_not_null()).row(500, named=True)
    times = funding["ts"].to_numpy()
    rates = funding["funding_rate"].to_numpy()
    last = rates[np.searchsorted(times, row["ts"], side="left") - 1]  # strictly before the decision
    assert row["funding_rate_last"] == last
    assert row["cost"] == pytest.approx(10e-4 + 2e-4 + abs(last) * 3)
    settled = rates[(times > row["ts"]) & (times <= row["ts"] + 24 * 3600 * 10**9)].sum()
    assert row["fwd_net_long"] == pytest.approx(row["fwd_return"] - 12e-4 - settled)
    assert row["utility_long"] == pytest.approx(row["fwd_return"] / row["cost"])
    labelled = labels.filter(pl.col("y_up").is_not_null())
    assert labelled.height == 3000 - 24 - 14  # ATR warm-up and the horizon at the end
    ups = labelled.filter(pl.col("y_up") == 1)
    assert (ups["tb_label"] == 1).all() and (ups["tb_return"] > ups["cost"]).all()
    assert set(labelled["direction"].unique().to_list()) <= {-1.0, 0.0, 1.0}
