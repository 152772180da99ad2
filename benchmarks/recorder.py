"""Recorder throughput: core events → partitioned, ZSTD Parquet on disk (rows/s).

Input: the recorded USD-M BTCUSDT mix (bookTicker, trade, depth@0ms with its real level lists),
decoded once and copied under `--symbols` names so the recorder fans out over partitions as it does for
a whole market. Timed: `record()` of every event plus the flushes (Arrow conversion, sort, ZSTD level 3
encode, fsync, rename, journal) until everything is on disk; compaction on close is timed apart.

    ./dev run python benchmarks/recorder.py [--symbols 10] [--flush-rows 100000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
from pathlib import Path

import msgspec

from kestrel.binance.websocket.frames import FrameDecoder
from kestrel.config.paths import shared_data_dir
from kestrel.core.clock import LiveClock
from kestrel.core.enums import Market
from kestrel.core.events import DepthUpdate, MarketEvent
from kestrel.storage.recorder import ParquetRecorder

RECORDING = "hftbacktest/usdm/btcusdt_20240808.gz"


def load_events(path: Path, symbols: int) -> list[MarketEvent]:
    decoder = FrameDecoder(Market.FUTURES)
    base = []
    with gzip.open(path, "rb") as handle:
        for line in handle:
            stamp, _, body = line.rstrip(b"\n").partition(b" ")
            if body.startswith(b'{"stream"'):
                event = decoder.decode(body, int(stamp))
                base.append(event)
    events: list[MarketEvent] = []
    for index in range(symbols):
        name = "BTCUSDT" if index == 0 else f"SYM{index:03d}USDT"
        events.extend(base if index == 0 else (msgspec.structs.replace(e, symbol=name) for e in base))  # type: ignore[misc]
    events.sort(key=lambda e: e.ts_init)  # arrival order, symbols interleaved as on a real feed
    return events


def run(events: list[MarketEvent], flush_rows: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as directory:
        recorder = ParquetRecorder(Path(directory), LiveClock(), compact_on_close=False)
        recorder.start()
        start = time.perf_counter()
        cpu_start = time.process_time()
        record = recorder.record
        for index, event in enumerate(events, 1):
            record(event)
            if index % flush_rows == 0:
                recorder.flush()
        recorder.flush(wait=True)
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        stats = recorder.stats
        partitions = sorted(recorder._touched)
        compact_start = time.perf_counter()
        for partition in partitions:
            recorder.compact_partition(partition)
        compact_elapsed = time.perf_counter() - compact_start
        recorder.close()
    return {
        "rows": stats.rows_written,
        "partitions": len(partitions),
        "files_written": stats.files_written,
        "megabytes_written": round(stats.bytes_written / 1e6, 1),
        "seconds": round(elapsed, 3),
        "rows_per_s": round(stats.rows_written / elapsed),
        "cpu_seconds_both_threads": round(cpu, 3),
        "rows_per_cpu_s": round(stats.rows_written / cpu),
        "compaction_rows_per_s": round(stats.rows_written / compact_elapsed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--flush-rows", type=int, default=100_000, help="hand a batch to the writer every N rows")
    args = parser.parse_args()
    root = shared_data_dir()
    if root is None:
        raise SystemExit("benchmark needs ../shared/data/binance")
    events = load_events(root / RECORDING, args.symbols)
    levels = sum(len(e.bids) + len(e.asks) for e in events if isinstance(e, DepthUpdate))
    result = {
        "benchmark": "recorder",
        "symbols": args.symbols,
        "compression": "zstd(3)",
        "fsync": True,
        "target_rows_per_s": 1_000_000,
        "usdm_mix": {**run(events, args.flush_rows), "depth_levels": levels},
        "without_depth": run([e for e in events if not isinstance(e, DepthUpdate)], args.flush_rows),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
