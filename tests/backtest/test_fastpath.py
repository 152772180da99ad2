"""The bar fast path trades exactly as the event-driven engine on the same klines (R-BT-7)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from kestrel.backtest.data import read_candles, read_funding
from kestrel.backtest.driver import run_backtest
from kestrel.backtest.fastpath import FuturesRules, sma_cross_fast, sma_cross_signals, sweep
from kestrel.backtest.setup import BacktestRequest, engine_settings, prepare
from kestrel.config.loading import embedded_defaults
from kestrel.core.errors import ConfigurationError

FUTURES = "freqtrade_userdata_roshan7869/futures"


def ns(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()) * 1_000_000_000


@pytest.mark.parametrize(
    ("wallet", "mode", "start", "end"),
    [("3000", "long_short", "2021-01-01", "2022-07-01"), ("100000", "long_only", "2023-01-01", "2024-01-01")],
)
def test_fast_path_fills_equal_the_event_driven_engine(
    shared_data: Path, wallet: str, mode: str, start: str, end: str
) -> None:
    candles_path = shared_data / f"{FUTURES}/BTC_USDT_USDT-1h-futures.feather"
    funding_path = shared_data / f"{FUTURES}/BTC_USDT_USDT-1h-funding_rate.feather"
    base = embedded_defaults()
    config = base.model_copy(
        update={"backtest": base.backtest.model_copy(update={"futures_balances": {"USDT": Decimal(wallet)}})}
    )
    params = {"fast": "12", "slow": "26", "quantity": "1", "mode": mode}
    prepared = prepare(
        BacktestRequest(
            "sma_cross", [candles_path, funding_path], config, ["BTCUSDT"], params, ns(start), ns(end), seed=1
        )
    )
    events = run_backtest(prepared.setup)
    engine_fills = events.fills

    instrument = prepared.setup.instruments[0]
    rules = FuturesRules.of(
        instrument, engine_settings(config.matching), config.matching.default_leverage, Decimal(wallet)
    )
    candles = read_candles(candles_path).window(ns(start), ns(end))
    funding = [f for f in read_funding(funding_path, "BTCUSDT") if ns(start) <= f.ts_event < ns(end)]
    funding_arrays = (np.array([f.ts_event for f in funding]), np.array([f.funding_rate for f in funding]))
    fast = sma_cross_fast(candles, 12, 26, Decimal(1), rules, long_only=mode == "long_only", funding=funding_arrays)

    assert fast.fill_count == len(engine_fills) > 20
    for n, fill in enumerate(engine_fills):
        assert fast.fill_ts[n] == fill.ts_event
        assert fast.fill_quantity[n] == pytest.approx(float(fill.quantity * fill.side.sign))
        assert fast.fill_price[n] == pytest.approx(float(fill.price), rel=1e-12)
        assert fast.fill_fee[n] == pytest.approx(float(fill.fee), rel=1e-9)
        assert fast.fill_realized[n] == pytest.approx(float(fill.realized_pnl), rel=1e-9, abs=1e-6)
    liquidated = sum(1 for f in engine_fills if f.client_order_id.startswith("autoclose"))
    assert int(fast.fill_liquidation.sum()) == liquidated
    if mode == "long_short":
        assert liquidated > 0  # a small wallet: the comparison covers liquidations too
    final_wallet = events.final_balances["futures:USDT"]
    assert fast.wallet == pytest.approx(float(final_wallet), rel=1e-9, abs=1e-6)
    assert fast.funding == pytest.approx(float(sum(a for _, _, a in events.funding)), rel=1e-9, abs=1e-9)


def test_signals_are_exact_integer_crossovers() -> None:
    from fractions import Fraction

    rng = np.random.default_rng(5)
    ticks = np.cumsum(rng.integers(-3, 4, 400)) + 1000
    for fast, slow, long_only in [(2, 4, False), (3, 9, True), (5, 6, False)]:
        signals = sma_cross_signals(ticks, fast, slow, long_only)
        means = [
            (
                Fraction(int(ticks[i - fast + 1 : i + 1].sum()), fast),
                Fraction(int(ticks[i - slow + 1 : i + 1].sum()), slow),
            )
            for i in range(len(ticks))
        ]
        expected = [2] * len(ticks)
        for i in range(slow, len(ticks)):
            (f0, s0), (f1, s1) = means[i - 1], means[i]
            if f0 < s0 and f1 > s1:
                expected[i] = 1
            elif f0 > s0 and f1 < s1:
                expected[i] = 0 if long_only else -1
        assert signals.tolist() == expected
        assert 1 in expected
    with pytest.raises(ConfigurationError):
        sma_cross_signals(ticks, 4, 2, True)


def test_sweep_reports_one_row_per_parameter_pair(shared_data: Path) -> None:
    candles = read_candles(shared_data / f"{FUTURES}/BTC_USDT_USDT-4h-futures.feather")
    config = embedded_defaults()
    prepared = prepare(
        BacktestRequest(
            "sma_cross", [shared_data / f"{FUTURES}/BTC_USDT_USDT-4h-futures.feather"], config, ["BTCUSDT"], seed=1
        )
    )
    rules = FuturesRules.of(prepared.setup.instruments[0], engine_settings(config.matching), 10, Decimal(10_000))
    rows = sweep(candles, [(5, 20), (10, 30), (20, 60)], Decimal("0.01"), rules)
    assert [(r["fast"], r["slow"]) for r in rows] == [(5, 20), (10, 30), (20, 60)]
    assert rows[0]["fills"] > rows[2]["fills"] > 0
