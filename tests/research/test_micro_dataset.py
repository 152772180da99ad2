"""Microstructure samples: forward labels net of costs at the book's depth, R-FE-4 exclusions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from kestrel.config.research import CrossValidationConfig, LightGbmParams, LogisticParams
from kestrel.core.enums import Market
from kestrel.core.errors import DataError
from kestrel.features.micro import MicroSpec, events_table
from kestrel.features.raw_events import frames_to_events
from kestrel.labels.costs import CostModel
from kestrel.replay.raw import read_raw
from kestrel.research.micro_dataset import micro_dataset
from kestrel.research.models import ModelSpec
from kestrel.research.validation import out_of_fold

SECOND = 1_000_000_000


@pytest.fixture(scope="module")
def table(shared_data: Path) -> pl.DataFrame:
    return events_table(
        frames_to_events(read_raw(shared_data / "hftbacktest/usdm/btcusdt_20240808.gz")), Market.FUTURES
    )


def test_samples_labels_and_costs(table: pl.DataFrame) -> None:
    costs = CostModel(taker_fee_bps=5.0, slippage_bps=1.0)
    dataset, frame = micro_dataset(table, MicroSpec(), "BTCUSDT", SECOND, 10 * SECOND, costs, 200.0)
    assert 250 < dataset.rows <= frame.height <= 345
    assert (dataset.ends - dataset.starts == 10 * SECOND).all()
    assert set(frame["excluded"].unique().to_list()) <= {"", "warm-up"}
    row = frame.filter(pl.col("excluded") == "").row(100, named=True)
    assert row["forward_return"] == pytest.approx(row["mid_end"] / row["mid"] - 1)
    assert row["cost"] == pytest.approx(10e-4 + 2e-4)  # no fitted slippage: the constant per side
    assert np.array_equal(dataset.target, (dataset.forward_return > dataset.cost).astype(float))
    assert "timestamp_ok" not in dataset.feature_names and "qi" in dataset.feature_names
    # 10 s rarely beats 12 bps: train on the gross direction to exercise the purged pipeline
    free = CostModel(taker_fee_bps=0.0, slippage_bps=0.0)
    dataset, _ = micro_dataset(table, MicroSpec(), "BTCUSDT", SECOND, 10 * SECOND, free, 200.0)
    assert 0.2 < dataset.target.mean() < 0.8
    spec = ModelSpec("logistic", LightGbmParams(), LogisticParams(), 0)
    folds = dataset.splitter(CrossValidationConfig(folds=3), SECOND)
    oof = out_of_fold(dataset, folds, spec, with_regressor=False)
    assert oof.tested.all() and np.isfinite(oof.probabilities).all()


def test_untrusted_timestamps_are_excluded(table: pl.DataFrame) -> None:
    """The 2024 recorder ran ~1.27 s behind Binance: with a 1 s offset limit nothing is trusted."""
    strict = MicroSpec(max_clock_offset_ms=1000.0)
    with pytest.raises(DataError, match="no sample left"):
        micro_dataset(table, strict, "BTCUSDT", SECOND, 10 * SECOND, CostModel(), 200.0)
