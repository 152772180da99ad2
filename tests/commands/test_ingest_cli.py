"""`kestrel ingest` end to end: a real subprocess against the simulator running in this test's loop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

from kestrel.core.enums import Market
from kestrel.storage.catalog import Catalog
from tests.marketdata.simulated import simulator, until, venue_overrides

ROOT = Path(__file__).resolve().parents[2]


def write_config(path: Path, sim: Any, **storage: Any) -> Path:
    document = {"environment": "dev", "venue": venue_overrides(sim), "logging": {"level": "WARNING"}}
    if storage:
        document["storage"] = storage
    path.write_text(yaml.safe_dump(document))
    return path


async def run_kestrel(*args: str, timeout: float = 60) -> tuple[int, str, str]:
    """The CLI in a subprocess, awaited without blocking this loop (the simulator lives in it)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kestrel.cli", *args, cwd=ROOT, env=dict(os.environ),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode or 0, stdout.decode(), stderr.decode()


async def test_ingest_writes_the_stats_file_and_a_readable_recording(shared_data: Path, tmp_path: Path) -> None:
    async with simulator(shared_data, markets=[Market.FUTURES, Market.SPOT], symbols=3) as sim:
        config = write_config(tmp_path / "sim.yaml", sim)
        code, _, stderr = await run_kestrel(
            "ingest", "--config", str(config), "--symbols", "BTCUSDT,ETHUSDT", "--markets", "spot,futures",
            "--streams", "bookTicker,aggTrade,depth@100ms", "--record", str(tmp_path / "rec"),
            "--duration", "3", "--stats-json", str(tmp_path / "stats.json"),
        )  # fmt: skip
    assert code == 0, stderr
    assert "conns 3/3" in stderr and "msg/s" in stderr  # the live status line (futures /public, /market; spot)
    stats = json.loads((tmp_path / "stats.json").read_text())
    for scope in [stats["total"], *stats["per_symbol"].values()]:
        for key in ("messages", "gaps_detected", "resyncs", "drops_detected", "duplicates_detected"):
            assert isinstance(scope[key], int)
        assert {"p50", "p99"} <= scope["latency_ms"].keys()
    assert stats["total"]["reconnects"] == 0 and stats["total"]["messages"] > 0
    assert sorted(stats["per_symbol"]) == ["futures:BTCUSDT", "futures:ETHUSDT", "spot:BTCUSDT", "spot:ETHUSDT"]
    catalog = Catalog(tmp_path / "rec")
    info = catalog.info()
    catalog.close()
    assert info["streams"]["depth"]["markets"]["futures"]["id_gaps"] == 0
    assert info["streams"]["depth_snapshot"]["markets"]["spot"]["rows"] == 2


async def test_kill_9_mid_run_leaves_readable_parquet_and_the_restart_reports_the_loss(
    shared_data: Path, tmp_path: Path
) -> None:
    record = tmp_path / "rec"
    async with simulator(shared_data, markets=[Market.FUTURES], symbols=4) as sim:
        config = write_config(tmp_path / "sim.yaml", sim, recorder_flush_ms=60_000)  # all in the log at the kill
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "kestrel.cli", "ingest", "--config", str(config), "--markets", "futures",
            "--record", str(record), "--no-status", cwd=ROOT, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip

        def logged() -> int:
            return sum(path.stat().st_size for path in (record / "_wal").rglob("*.wal"))

        await until(lambda: logged() > 50_000, 30, "the recorder logging rows")
        process.send_signal(signal.SIGKILL)
        await process.wait()
        for path in (record / "market").rglob("*.parquet"):
            pq.read_table(path)  # every file that exists is complete
        code, _, stderr = await run_kestrel(
            "ingest", "--config", str(config), "--markets", "futures", "--record", str(record), "--duration", "1",
            "--no-status",
        )  # fmt: skip
    assert code == 0, stderr
    assert "recorder: recovered 1 crashed session(s):" in stderr and "rows rescued from the write-ahead log" in stderr
    assert not list((record / "market").rglob("*.tmp"))
    catalog = Catalog(record)
    crashes = catalog.info()["recorder_crashes"]
    _, rows = catalog.query("SELECT count(*) FROM depth")
    catalog.close()
    assert len(crashes) == 1 and crashes[0]["recovered_rows"] > 0 and crashes[0]["lost_window_ms"] == 20
    assert rows[0][0] > 0


async def test_bad_inputs_give_one_clear_line(shared_data: Path, tmp_path: Path) -> None:
    async with simulator(shared_data, markets=[Market.FUTURES], symbols=2) as sim:
        config = write_config(tmp_path / "sim.yaml", sim)
        code, _, stderr = await run_kestrel(
            "ingest", "--config", str(config), "--symbols", "NOPEUSDT", "--markets", "futures"
        )
        assert code == 2 and stderr.strip().splitlines() == [
            "kestrel: error: no TRADING USDT instrument named NOPEUSDT on futures"
        ]
    code, _, stderr = await run_kestrel("ingest", "--markets", "coinm")
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and "--markets" in stderr
    code, _, stderr = await run_kestrel("ingest", "--config", str(config), "--duration", "1")  # nothing listens now
    lines = stderr.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "no answer" in lines[0] and "Traceback" not in stderr
