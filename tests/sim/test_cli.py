"""`kestrel sim serve` as a user runs it: one JSON line with the URLs, a working server, stats on exit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.test_cli import assert_one_line_error, kestrel

ROOT = Path(__file__).resolve().parents[2]


def test_serve_prints_urls_serves_and_writes_stats(tmp_path: Path) -> None:
    stats = tmp_path / "stats.json"
    faults = tmp_path / "faults.yaml"
    faults.write_text("faults:\n  clock_skew_ms: 5000\n  gap_rate: 0.0\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "kestrel.cli", "sim", "serve", "--symbols", "3", "--markets", "futures",
         "--port", "0", "--stats-json", str(stats), "--faults", str(faults), "--duration", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = json.loads(process.stdout.readline())
        assert line["event"] == "sim_started" and line["symbols"] == {"futures": 3}
        assert line["futures"]["ws_url"].startswith("ws://127.0.0.1:")
        with urllib.request.urlopen(line["rest_url"] + "/fapi/v1/exchangeInfo", timeout=10) as response:
            body = json.loads(response.read())
            assert [entry["symbol"] for entry in body["symbols"]] == ["BTCUSDT", "ETHUSDT", "BCHUSDT"]
            assert response.headers["X-MBX-USED-WEIGHT-1M"] == "1"
        with urllib.request.urlopen(line["rest_url"] + "/fapi/v1/time", timeout=10) as response:
            skewed = json.loads(response.read())["serverTime"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    document = json.loads(stats.read_text())
    assert set(document) >= {"total", "per_symbol", "per_stream", "connections", "rest"}
    assert set(document["per_symbol"]) == {"futures:BTCUSDT", "futures:ETHUSDT", "futures:BCHUSDT"}
    assert document["rest"]["requests"] == 2
    assert skewed > 0


@pytest.mark.parametrize(
    ("arguments", "needle"),
    [
        (["--markets", "spot,moon"], "--markets"),
        (["--symbols", "BTC-USDT"], "--symbols"),
        (["--symbols", "NOSUCHUSDT"], "NOSUCHUSDT"),
        (["--faults", "missing.yaml"], "missing.yaml"),
        (["--gap-rate", "1.5"], "--gap-rate"),
        (["--source", "moon"], "--source"),
        (["--source", "replay"], "--replay"),
        (["--replay", "nope.gz"], "nope.gz"),
        (["--stats-json", "/no/such/dir/stats.json"], "--stats-json"),
        (["--no-such-flag"], "--no-such-flag"),
    ],
)
def test_bad_input_is_one_line(arguments: list[str], needle: str) -> None:
    result = kestrel("sim", "serve", "--duration", "1", *arguments)
    assert_one_line_error(result, needle)


def test_bad_fault_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "faults.yaml"
    bad.write_text("gap_rate: lots\ncolour: blue\n")
    result = kestrel("sim", "serve", "--duration", "1", "--faults", str(bad))
    assert_one_line_error(result, "faults.yaml", "gap_rate", "colour: unknown key")
    assert result.returncode == 2
    broken = tmp_path / "broken.yaml"
    broken.write_text("gap_rate: [\n")
    assert_one_line_error(kestrel("sim", "serve", "--faults", str(broken)), "invalid YAML")


def test_port_in_use_is_one_line() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = kestrel("sim", "serve", "--port", str(port), "--duration", "1", env={**os.environ})
    assert_one_line_error(result, f"cannot listen on 127.0.0.1:{port}")
    assert result.returncode == 1


def test_replay_serve(shared_data: Path, tmp_path: Path) -> None:
    stats = tmp_path / "stats.json"
    recording = shared_data / "cryptofeed/BINANCE_FUTURES.ws.1.0.gz"
    process = subprocess.Popen(
        [sys.executable, "-m", "kestrel.cli", "sim", "serve", "--replay", str(recording), "--markets", "futures",
         "--speed", "0", "--replay-start", "immediately", "--stats-json", str(stats), "--duration", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = json.loads(process.stdout.readline())
        assert line["source"] == "replay" and line["symbols"] == {"futures": 4}
        with urllib.request.urlopen(line["rest_url"] + "/fapi/v1/depth?symbol=CTKUSDT&limit=5", timeout=10) as response:
            assert json.loads(response.read())["lastUpdateId"] > 600_859_600_000
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert json.loads(stats.read_text())["rest"]["snapshots_served"] == 1


def test_the_documented_fault_file_is_valid(tmp_path: Path) -> None:
    from kestrel.sim import load_fault_plan

    lines = (ROOT / "docs" / "simulator.md").read_text().splitlines()
    start = lines.index("    faults:")
    block = []
    for line in lines[start:]:
        if not line.strip():
            break
        block.append(line[4:])
    path = tmp_path / "faults.yaml"
    path.write_text("\n".join(block) + "\n")
    plan = load_fault_plan(path)
    assert plan.gap_rate == 0.001 and plan.drop_streams == ["aggTrade"] and plan.clock_skew_ms == 250
