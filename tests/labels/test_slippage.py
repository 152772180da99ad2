"""Slippage quantiles fitted from trades replayed against the recorded quotes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kestrel.cli import main
from kestrel.core.enums import Market
from kestrel.features.raw_events import frames_to_events
from kestrel.labels.costs import CostModel
from kestrel.labels.slippage import fit_slippage, taker_orders
from kestrel.replay.raw import read_raw

RECORDING = "hftbacktest/usdm/btcusdt_20240808.gz"


def test_taker_orders_and_fit_on_a_real_recording(shared_data: Path) -> None:
    events = list(frames_to_events(read_raw(shared_data / RECORDING)))
    orders = taker_orders(events, Market.FUTURES)
    trades = sum(1 for e in events if type(e).__name__ == "Trade")
    assert 1000 < orders.height < trades  # several prints per taker order
    assert set(orders["side"].unique().to_list()) == {-1.0, 1.0}
    median = float(orders["slippage_bps"].median())
    assert 0 <= median < 1.0  # about half the BTC perp spread (0.1 USDT on ~60k)
    fit = fit_slippage(orders, (RECORDING,))
    assert fit.model.orders == orders.height and fit.typical_depth_usdt > 10_000
    low, mid, high = (fit.per_side_bps(q, 200.0) for q in (0.025, 0.5, 0.975))
    assert low <= mid <= high and high < 5.0
    # big orders against the same book cost more at the top quantile
    assert fit.per_side_bps(0.975, 5_000_000) > high
    costs = CostModel(
        slippage_model=fit.model, slippage_quantile="p97_5",
        default_depth_usdt=fit.typical_depth_usdt, default_kyle_lambda=fit.typical_kyle_lambda,
    )  # fmt: skip
    assert costs.slippage(200.0) == pytest.approx(2 * high * 1e-4)
    assert np.isfinite(orders["impact_bps"].to_numpy()).all()


def test_fit_slippage_cli(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "slippage.json"
    assert main(["labels", "fit-slippage", "--raw", f"shared:{RECORDING}", "--out", str(out)]) == 0
    assert "taker orders" in capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert set(saved["coefficients"]) == {"0.025", "0.5", "0.975"} and saved["typical_depth_usdt"] > 0
    assert main(["labels", "fit-slippage", "--raw", str(tmp_path / "missing.gz")]) == 1
    assert "no such file" in capsys.readouterr().err
