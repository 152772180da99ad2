"""The lookahead checker: the real feature pipeline passes; a planted peek is caught and named."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from kestrel.cli import main
from kestrel.config.loading import load_config
from kestrel.features.lookahead import check_lookahead, cut_times
from kestrel.features.table import bar_spec_from_config, kline_feature_computation
from kestrel.research.klines import load_kline_data

CONFIG = Path(__file__).resolve().parents[2] / "config" / "research" / "example.yaml"


def _computation(plugin=None):  # type: ignore[no-untyped-def]
    config = load_config(CONFIG, overrides={"research": {"data": {"last_bars": 1500}}}, env_file=None)
    data = load_kline_data(config)
    spec = bar_spec_from_config(config, data.interval_s)
    compute = kline_feature_computation(data.series, spec, 72, "median_mad", 256, plugin)
    times = np.concatenate([s.bars["open_time_ns"].to_numpy() + 3600 * 10**9 for s in data.series])
    return compute, cut_times(times, 6, skip_fraction=0.6)


def test_real_features_use_nothing_after_their_time(shared_data: Path) -> None:
    compute, cuts = _computation()
    report = check_lookahead(compute, cuts)
    assert report.passed, report.violations
    assert "rv_pct_720" in report.checked_features and "corr_ref_72" in report.checked_features
    assert report.rows_compared > 5000


def test_a_feature_peeking_one_bar_ahead_is_named(shared_data: Path) -> None:
    def plugin(bars: pl.DataFrame) -> pl.DataFrame:
        return bars.select(
            (pl.col("close").shift(-1) / pl.col("close")).alias("planted_next_close"),  # peeks one bar
            (pl.col("close") / pl.col("close").shift(1)).alias("honest_return"),
        )

    compute, cuts = _computation(plugin)
    report = check_lookahead(compute, cuts)
    assert not report.passed
    assert set(report.violations) == {"planted_next_close"}
    violation = report.violations["planted_next_close"]
    assert violation.ts == violation.cut_ns and violation.truncated_value is None  # the last known bar
    assert "planted_next_close" in report.summary()


def test_a_centred_window_is_caught() -> None:
    """A batch-only mistake: a rolling mean centred on t (uses t+1..t+k)."""
    times = np.arange(1, 301) * 10
    values = np.sin(np.arange(300) / 7.0)

    def compute(until: int | None) -> pl.DataFrame:
        frame = pl.DataFrame({"ts": times, "symbol": ["X"] * 300, "x": values})
        if until is not None:
            frame = frame.filter(pl.col("ts") <= until)
        return frame.with_columns(
            pl.col("x").rolling_mean(5).alias("trailing"),
            pl.col("x").rolling_mean(5, center=True).alias("centred"),
        )

    report = check_lookahead(compute, cut_times(times, 5))
    assert set(report.violations) == {"centred"}


def test_cli_check_lookahead_names_the_planted_feature(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "planted_features.py").write_text(
        textwrap.dedent(
            """
            import polars as pl

            def peek(bars):
                return bars.select(pl.col("close").shift(-1).alias("tomorrow_close"))
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    arguments = ["features", "check-lookahead", "--config", str(CONFIG), "--last-bars", "1200", "--cuts", "4"]
    assert main([*arguments, "--plugin", "planted_features:peek"]) == 1
    captured = capsys.readouterr()
    assert "tomorrow_close" in captured.err and "FAILED" in captured.out
    assert "natr_14" not in captured.err
    assert main(arguments) == 0
    assert "passed" in capsys.readouterr().out
    assert main([*arguments, "--plugin", "planted_features"]) == 2
    assert "module:function" in capsys.readouterr().err


def test_cli_checks_the_microstructure_batch_path(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = shared_data / "hftbacktest/spot/ethusdt_20240808.gz"
    assert main(["features", "check-lookahead", "--raw", str(raw), "--cuts", "3"]) == 0
    assert "passed" in capsys.readouterr().out
    assert main(["features", "check-lookahead"]) == 2
