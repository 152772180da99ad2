"""`kestrel data ...` end to end (real subprocesses), and one clear line for every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_cli import assert_one_line_error, kestrel


@pytest.fixture(scope="module")
def recording(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("recording")
    result = kestrel(
        "data", "import-raw",
        str(shared_data / "cryptofeed/BINANCE_FUTURES.ws.1.0.gz"),
        str(shared_data / "cryptofeed/BINANCE_FUTURES.http.0.0.gz"),
        "--out", str(out), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["events"]["depth"] == 764 and report["events"]["depth_snapshot"] == 4
    return out


def test_info_query_replay(recording: Path) -> None:
    info = kestrel("data", "info", str(recording), "--json")
    assert info.returncode == 0, info.stderr
    summary = json.loads(info.stdout)
    depth = summary["streams"]["depth"]["markets"]["futures"]
    assert depth["rows"] == 764 and depth["symbols"] == 4 and depth["id_gaps"] == 0
    assert summary["symbols"] == ["futures:AKROUSDT", "futures:CTKUSDT", "futures:KEEPUSDT", "futures:SUSHIUSDT"]
    text = kestrel("data", "info", str(recording))
    assert "depth:" in text.stdout and "2021-07-22T22:25" in text.stdout

    query = kestrel(
        "data",
        "query",
        str(recording),
        "SELECT symbol, count(*) AS n FROM agg_trade GROUP BY 1 ORDER BY 1",
        "--format",
        "json",
    )
    assert query.returncode == 0, query.stderr
    assert sum(row["n"] for row in json.loads(query.stdout)) == 91

    replay = kestrel("data", "replay", str(recording), "--streams", "kline", "--limit", "5")
    lines = [json.loads(line) for line in replay.stdout.splitlines()]
    assert len(lines) == 5 and {line["type"] for line in lines} == {"Kline"}
    assert [line["ts_event"] for line in lines] == sorted(line["ts_event"] for line in lines)
    count = kestrel("data", "replay", str(recording), "--count", "--start", "2021-07-22T22:26:00Z")
    assert count.returncode == 0 and 0 < int(count.stdout) < 1543


def test_bad_inputs_give_one_line(recording: Path, tmp_path: Path) -> None:
    assert_one_line_error(kestrel("data", "info", str(tmp_path / "missing")), "no such directory")
    assert_one_line_error(kestrel("data", "query", str(recording), "SELEKT 1"), "query failed")
    assert_one_line_error(kestrel("data", "query", str(recording), "SELECT 1", "--format", "xml"), "--format")
    assert_one_line_error(
        kestrel("data", "import-raw", str(tmp_path / "nope.gz"), "--out", str(tmp_path)), "no such file"
    )
    assert_one_line_error(kestrel("data", "replay", str(recording), "--start", "yesterday"), "--start")
    assert_one_line_error(kestrel("data", "replay", str(recording), "--streams", "candles"), "unknown stream")
