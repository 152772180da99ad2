"""Batch microstructure features over L2 recordings: rows per second from Parquet.

The longest real recording of one symbol's L2 is ~11 minutes (hftbacktest spot BTCUSDT, 2024-08-08
23:54 → 08-09 00:05; SOURCES.md has no full-day depth capture). The benchmark builds the events table
from it, tiles it in time to `--hours` of data (each copy shifted by the recording's span: same event
mix and density as the real market), writes Parquet, then times read + compiled feature computation
per event and on a 100 ms grid. A full day at this density is then estimated from the measured rate.

    ./dev run python benchmarks/features_batch.py [--hours 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import polars as pl

from kestrel.core.enums import Market
from kestrel.features.io import resolve_data_path
from kestrel.features.micro import MicroSpec, compute_micro_features, events_table
from kestrel.features.raw_events import frames_to_events
from kestrel.replay.raw import merge_by_local_time, read_raw

FILES = ("shared:hftbacktest/spot/btcusdt_20240808.gz", "shared:hftbacktest/spot/btcusdt_20240809.gz")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hours", type=float, default=2.0)
    args = parser.parse_args()
    frames = merge_by_local_time([read_raw(resolve_data_path(path)) for path in FILES])
    events = list(frames_to_events(frames))
    started = time.perf_counter()
    base = events_table(events, Market.SPOT)
    table_seconds = time.perf_counter() - started
    span = int(base["ts_init"][-1] - base["ts_init"][0]) + 1
    copies = max(1, round(args.hours * 3600e9 / span))
    # later copies continue the book with diffs only (the snapshot reset is in the first copy)
    body = base.filter(pl.col("kind") != 2)
    tiled = pl.concat(
        [base]
        + [body.with_columns(pl.col("ts_init") + k * span, pl.col("ts_event") + k * span) for k in range(1, copies)]
    )
    spec = MicroSpec()
    compute_micro_features(base.head(1000), spec)  # compile / load cached code
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "events.parquet"
        tiled.write_parquet(path, compression="zstd")
        results = {}
        for label, sample in (("per_event", 0), ("grid_100ms", 100_000_000)):
            started = time.perf_counter()
            loaded = pl.read_parquet(path)
            features = compute_micro_features(loaded, spec, sample)
            seconds = time.perf_counter() - started
            results[label] = {
                "input_rows": loaded.height,
                "output_rows": features.height,
                "seconds": round(seconds, 3),
                "input_rows_per_s": round(loaded.height / seconds),
            }
    hours = copies * span / 3600e9
    rate = results["per_event"]["input_rows_per_s"]
    print(
        json.dumps(
            {
                "benchmark": "features_batch",
                "source": list(FILES),
                "real_events": len(events),
                "real_span_s": round(span / 1e9, 1),
                "tiled_hours": round(hours, 2),
                "events_table_rows_per_s": round(base.height / table_seconds),
                "features": len(spec.names),
                **results,
                "estimated_seconds_for_one_day_per_event": round(base.height * (86400e9 / span) / rate, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
