"""Full market against the simulator on loopback: CPU share of one core and exchange→ingest latency.

The simulator runs in its own process (`kestrel sim serve`: 300 USD-M symbols at its realistic default
rates); this process runs the feed exactly as `kestrel ingest` does (uvloop, bookTicker + aggTrade +
depth@100ms, 100 streams per connection, books synced, quality audited, no recorder) and measures its
own CPU time over a window after every book is synced. Latency is ts_init − ts_event per event (the
simulator stamps E in ms, so values carry up to 1 ms of truncation).

    ./dev run python benchmarks/ingest_sim.py [--symbols 300] [--seconds 30] [--record]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kestrel.config.loading import load_config
from kestrel.core.clock import LiveClock
from kestrel.marketdata.feed import MarketDataFeed
from kestrel.marketdata.quality import LatencyHistogram
from kestrel.storage.recorder import ParquetRecorder


async def loop_lag(histogram: LatencyHistogram) -> None:
    """Record how late the event loop wakes from a 5 ms sleep (time this process itself blocked it)."""
    while True:
        before = time.perf_counter()
        await asyncio.sleep(0.005)
        histogram.record(int((time.perf_counter() - before - 0.005) * 1e6))


def start_simulator(symbols: int) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "kestrel.cli", "sim", "serve", "--symbols", str(symbols), "--markets", "futures",
         "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise SystemExit("the simulator did not start")
    return process, json.loads(line)


async def measure(urls: dict[str, Any], symbols: int, seconds: float, record: Path | None) -> dict[str, Any]:
    config = load_config(
        None,
        overrides={
            "environment": "dev",
            "venue": {"futures": urls["futures"], "spot": urls["spot"]},
            "data": {
                "ingest": {
                    "markets": ["futures"],
                    "streams": ["bookTicker", "aggTrade", "depth@100ms"],
                    "streams_per_connection": 100,
                    "depth_snapshot_limit": 100,
                }
            },
        },
        env_file=None,
    )
    clock = LiveClock()
    recorder = ParquetRecorder(record, clock) if record is not None else None
    if recorder is not None:
        recorder.start()
    feed = MarketDataFeed(config, clock, recorder=recorder, manage_gc=True)  # as `kestrel ingest` runs it
    await feed.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            stats = feed.stats()
            if len(stats["per_symbol"]) == symbols and all(s["book_synced"] for s in stats["per_symbol"].values()):
                break
            await asyncio.sleep(0.5)
        for slot in feed._slots.values():  # measure the window only
            slot.quality.latency = LatencyHistogram()
        lag = LatencyHistogram()
        monitor = asyncio.create_task(loop_lag(lag))
        messages_before = feed.messages
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - cpu_before, time.perf_counter() - wall_before
        monitor.cancel()
        stats = feed.stats()
        messages = feed.messages - messages_before
    finally:
        await feed.stop()
        if recorder is not None:
            recorder.close()
    total = stats["total"]
    return {
        "benchmark": "ingest_sim",
        "symbols": symbols,
        "shards": stats["connections"]["shards"],
        "streams": stats["connections"]["streams"],
        "seconds": round(wall, 1),
        "messages": messages,
        "messages_per_s": round(messages / wall),
        "cpu_share_of_one_core": round(cpu / wall, 3),
        "cpu_us_per_message": round(cpu / max(messages, 1) * 1e6, 1),
        "latency_ms": total["latency_ms"],
        "event_loop_lag_ms": lag.summary_ms(),  # how late a 5 ms sleep wakes: our own blocking
        "gaps_detected": total["gaps_detected"],
        "recording": record is not None,
        "targets": {"cpu_share_of_one_core": 0.30, "latency_p99_ms": 5.0},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--record", action="store_true", help="also record to a temporary directory")
    args = parser.parse_args()
    simulator, urls = start_simulator(args.symbols)
    try:
        runner: Any = asyncio.run
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:
            pass
        with tempfile.TemporaryDirectory() as directory:
            record = Path(directory) if args.record else None
            result = runner(measure(urls, args.symbols, args.seconds, record))
    finally:
        simulator.terminate()
        simulator.wait(timeout=30)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
