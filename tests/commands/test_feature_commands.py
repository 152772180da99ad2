"""`kestrel features build` (bars and raw recordings) and `kestrel labels build`."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml

from kestrel.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "research" / "example.yaml"


def _config(tmp_path: Path) -> Path:
    config = yaml.safe_load(EXAMPLE.read_text())
    config["research"]["data"]["last_bars"] = 1500
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_build_bar_features_and_labels(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path)
    assert main(["features", "build", "--config", str(config), "--out", str(tmp_path / "f"), "--no-progress"]) == 0
    features = pl.read_parquet(tmp_path / "f/bars_3600s/symbol=ETHUSDT/part-0.parquet")
    assert features.height == 1500 and {"natr_14", "corr_ref_72", "funding_rate"} <= set(features.columns)
    assert main(["labels", "build", "--config", str(config), "--out", str(tmp_path / "l"), "--no-progress"]) == 0
    labels = pl.read_parquet(tmp_path / "l/bars_3600s/symbol=BTCUSDT/part-0.parquet")
    assert labels.height == 1500 and {"tb_label", "y_up", "cost", "utility_long"} <= set(labels.columns)
    assert "labelled rows" in capsys.readouterr().out


def test_build_micro_features_from_raw(shared_data: Path, tmp_path: Path) -> None:
    raw = shared_data / "hftbacktest/usdm/ethusdt_20240808.gz"
    args = ["features", "build", "--raw", str(raw), "--sample-ms", "1000", "--out", str(tmp_path), "--no-progress"]
    assert main(args) == 0
    folder = tmp_path / "micro/futures/symbol=ETHUSDT"
    features = pl.read_parquet(folder / "features.parquet")
    assert 330 < features.height < 350 and "kyle_lambda_1000ms" in features.columns
    assert pl.read_parquet(folder / "events.parquet").height > 70_000


def test_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["features", "build"]) == 2
    assert "--config" in capsys.readouterr().err
    assert main(["features", "build", "--config", str(tmp_path / "none.yaml")]) == 2
    assert main(["features", "build", "--raw", str(tmp_path / "none.gz")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert main(["features", "check-lookahead", "--config", str(EXAMPLE), "--cuts", "0"]) == 2
    assert main(["labels", "build", "--config", str(EXAMPLE), "--bogus"]) == 2
