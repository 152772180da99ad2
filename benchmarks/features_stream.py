"""Streaming microstructure features: nanoseconds per event for the whole feature set, on one core.

Replays a real Binance USD-M recording (bookTicker, trades, depth@0ms diffs, snapshot) through
`MicrostructureFeatures.on_event` — the same call a live or backtest consumer makes — and reports the
mean cost per event (best of several passes, since other work on the machine only adds time), the
cost per event type, and the "typical" cost: the event mix weighted by each type's median (robust to
preemption on a shared machine). Prints JSON.

    ./dev run python benchmarks/features_stream.py [--recording shared:hftbacktest/usdm/btcusdt_20240808.gz]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict

from kestrel.features.io import resolve_data_path
from kestrel.features.micro import MicroSpec, MicrostructureFeatures
from kestrel.features.raw_events import frames_to_events
from kestrel.replay.raw import read_raw


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recording", default="shared:hftbacktest/usdm/btcusdt_20240808.gz")
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()
    events = list(frames_to_events(read_raw(resolve_data_path(args.recording))))
    market = events[0].market
    spec = MicroSpec()
    warm = MicrostructureFeatures(spec, market)
    for event in events:  # compile (or load the cached machine code) and warm caches
        warm.on_event(event)
    totals = []
    for _ in range(args.passes):
        engine = MicrostructureFeatures(spec, market)
        on_event = engine.on_event
        started = time.perf_counter_ns()
        for event in events:
            on_event(event)
        totals.append(time.perf_counter_ns() - started)
    per_kind: dict[str, list[int]] = defaultdict(list)
    engine = MicrostructureFeatures(spec, market)
    for event in events:
        started = time.perf_counter_ns()
        engine.on_event(event)
        per_kind[type(event).__name__].append(time.perf_counter_ns() - started)
    counts = {kind: len(values) for kind, values in per_kind.items()}
    # robust to other processes preempting this one: the event mix weighted by each type's median cost
    typical = sum(statistics.median(values) * len(values) for values in per_kind.values()) / len(events)
    print(
        json.dumps(
            {
                "benchmark": "features_stream",
                "recording": args.recording,
                "market": str(market),
                "events": len(events),
                "features": len(spec.names),
                "windows_ms": list(spec.windows_ms),
                "ns_per_event_best": round(min(totals) / len(events)),
                "ns_per_event_median": round(statistics.median(totals) / len(events)),
                "ns_per_event_typical": round(typical),
                "target_ns_per_event": 5000,
                "ns_per_event_by_type_median": {k: round(statistics.median(v)) for k, v in per_kind.items()},
                "ns_per_event_by_type_mean": {k: round(statistics.fmean(v)) for k, v in per_kind.items()},
                "event_mix": counts,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
