"""Backtests on the shared real recordings: reproducibility, the market maker and its report, the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from kestrel.backtest.driver import run_backtest
from kestrel.backtest.setup import BacktestRequest, prepare
from kestrel.cli import main
from kestrel.config.loading import embedded_defaults
from kestrel.config.models import KestrelConfig, LatencyConfig

RECORDING = "hftbacktest/usdm/btcusdt_20240718.gz"


def random_latency_config() -> KestrelConfig:
    base = embedded_defaults()
    matching = base.matching.model_copy(
        update={
            "feed_latency": LatencyConfig(model="lognormal", median_ms=20.0, sigma=1.0),
            "order_entry_latency": LatencyConfig(model="lognormal", median_ms=25.0, sigma=1.0),
            "order_response_latency": LatencyConfig(model="normal", mean_ms=20.0, std_ms=10.0),
        }
    )
    return base.model_copy(update={"matching": matching})


def run_hash(shared: Path, config: KestrelConfig, seed: int) -> tuple[str, int]:
    request = BacktestRequest(
        "market_maker", [shared / RECORDING], config, ["BTCUSDT"], {"interval_ms": "20"}, seed=seed
    )
    result = run_backtest(prepare(request).setup)
    return result.fills_hash(), len(result.fills)


def test_same_data_and_seed_give_identical_fills_and_another_seed_another_reproducible_run(shared_data: Path) -> None:
    config = random_latency_config()
    first, count = run_hash(shared_data, config, seed=1)
    assert count > 5
    assert run_hash(shared_data, config, seed=1)[0] == first
    other = run_hash(shared_data, config, seed=2)[0]
    assert other != first
    assert run_hash(shared_data, config, seed=2)[0] == other


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.ids.update(value for name, value in attrs if name == "id" and value)


def test_market_maker_on_shared_usdm_l2_writes_a_complete_run(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "backtest",
            "--strategy",
            "market_maker",
            "--data",
            str(shared_data / RECORDING),
            "--symbols",
            "BTCUSDT",
            "--seed",
            "3",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0, capsys.readouterr().err
    (run_dir,) = tmp_path.iterdir()
    names = {p.name for p in run_dir.iterdir()}
    assert {
        "params.json",
        "shas.json",
        "fills.csv",
        "orders.csv",
        "equity.csv",
        "metrics.json",
        "report.html",
        "round_trips.csv",
    } <= names
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in (
        "pnl_gross",
        "fees",
        "funding",
        "slippage",
        "sharpe",
        "sortino",
        "max_drawdown_pct",
        "win_rate",
        "profit_factor",
        "turnover",
        "exposure",
        "trade_count",
    ):
        assert key in metrics
    assert metrics["fill_count"] > 5 and metrics["fees"] > 0
    shas = json.loads((run_dir / "shas.json").read_text())
    assert len(shas["code"]) == 64 and next(iter(shas["data"].values())) and len(shas["fills"]) == 64
    params = json.loads((run_dir / "params.json").read_text())
    assert params["seed"] == 3 and params["strategy"] == "market_maker"
    report = (run_dir / "report.html").read_text()
    parser = _Collector()
    parser.feed(report)
    assert parser.tags.count("svg") == 3 and {"metrics", "params", "trips"} <= parser.ids
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium:  # also render it in a real browser when one is installed
        shot = tmp_path / "report.png"
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                f"--screenshot={shot}",
                "--window-size=1000,1200",
                (run_dir / "report.html").as_uri(),
            ],
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert shot.exists() and shot.stat().st_size > 10_000


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--strategy", "market_maker", "--data", "/no/such/file.gz"], "no such file"),
        (["--strategy", "nope", "--data", "{data}"], "unknown strategy"),
        (["--strategy", "sma_cross", "--data", "{data}", "--from", "yesterday"], "not a date"),
        (["--strategy", "sma_cross", "--data", "{data}", "--param", "fast"], "key=value"),
        (["--strategy", "sma_cross", "--data", "{data}", "--param", "speed=3"], "unknown parameter"),
        (["--strategy", "sma_cross", "--data", "{data}", "--symbols", "XYZUSDT"], "no market data"),
        (["--strategy", "sma_cross"], "Missing option"),
    ],
)
def test_bad_backtest_input_is_one_line_and_a_non_zero_exit(
    shared_data: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    data = str(shared_data / "freqtrade_userdata_roshan7869/futures/BTC_USDT_USDT-4h-futures.feather")
    code = main(["backtest", *[a.replace("{data}", data) for a in arguments]])
    error = capsys.readouterr().err.strip()
    assert code != 0
    assert len(error.splitlines()) == 1 and message in error and "Traceback" not in error
