"""The feed's statistics (`kestrel ingest --stats-json`) and its one-line live status.

Counting rules, per symbol (summed for the total):
- `messages`: stream events received and decoded (duplicates included);
- `gaps_detected`: depth sequence breaks that were real (a one-message reorder is not a gap);
- `drops_detected`: trade / aggregate-trade ids known missing;
- `duplicates_detected`: events received twice (depth, trades, tops), not counting the overlap of a
  planned connection rotation (`rotation_duplicates`);
- `out_of_order`: events that arrived after a later one of their stream;
- `resyncs`: book rebuilds from a new snapshot (gap, crossed book, stale snapshot, gap-ratio rebuild);
- `latency_ms`: exchange → ingest, p50/p99/max/mean, corrected by the measured clock offset.
"""

from __future__ import annotations

from statistics import median
from typing import TYPE_CHECKING, Any

from kestrel.core.events import NANOS_PER_SECOND
from kestrel.marketdata.quality import LatencyHistogram

if TYPE_CHECKING:
    from kestrel.marketdata.feed import MarketDataFeed, SymbolSlot


def symbol_stats(slot: SymbolSlot, drift_degraded: bool = False) -> dict[str, Any]:
    state = slot.sequence
    depth = state.book.counters
    trades, aggregates, tickers = state.trades.counters, state.aggregate_trades.counters, state.tickers.counters
    duplicates = depth.duplicates + trades.duplicates + aggregates.duplicates + tickers.duplicates
    quality = slot.quality
    return {
        "messages": quality.messages,
        "gaps_detected": depth.gaps,
        "drops_detected": trades.drops + aggregates.drops,
        "duplicates_detected": duplicates - slot.rotation_duplicates,
        "rotation_duplicates": slot.rotation_duplicates,
        "out_of_order": depth.out_of_order + trades.out_of_order + aggregates.out_of_order + tickers.out_of_order,
        "resyncs": depth.resyncs,
        "stale_snapshots": depth.stale_snapshots,
        "snapshots": depth.snapshots,
        "rebuilds": quality.rebuilds,
        "book_synced": state.book.is_synced,
        "book_update_id": state.book.book.update_id,
        "degraded": quality.degraded or drift_degraded,
        "gap_ratio_pct_last_minute": round(quality.last_gap_ratio_pct, 4),
        "latency_ms": quality.latency.summary_ms(),
    }


_SUMMED = (
    "messages",
    "gaps_detected",
    "drops_detected",
    "duplicates_detected",
    "rotation_duplicates",
    "out_of_order",
    "resyncs",
    "stale_snapshots",
    "snapshots",
    "rebuilds",
)


def feed_stats(feed: MarketDataFeed) -> dict[str, Any]:
    drift = feed.audit.drift_degraded
    per_symbol = {slot.key: symbol_stats(slot, drift) for slot in sorted(feed._slots.values(), key=lambda s: s.key)}
    total: dict[str, Any] = {name: sum(item[name] for item in per_symbol.values()) for name in _SUMMED}
    latency = LatencyHistogram()
    for slot in feed._slots.values():
        latency.merge(slot.quality.latency)
    total["latency_ms"] = latency.summary_ms()
    total["degraded_symbols"] = sum(1 for item in per_symbol.values() if item["degraded"])
    total["symbols"] = len(per_symbol)
    connections = [c.counters for c in feed.connections]
    reconnect_ms = [value for counters in connections for value in counters.reconnect_ms]
    total["reconnects"] = sum(c.reconnects for c in connections)
    total["malformed_frames"] = feed.audit.problems.counts.get("malformed_frame", 0)
    total["unknown_event_types"] = feed.audit.problems.counts.get("unknown_event_type", 0)
    total["rest_fallback_events"] = feed.rest_fallback_events
    elapsed_s = max((feed.clock.timestamp_ns() - feed.started_ns) / NANOS_PER_SECOND, 1e-9)
    return {
        "total": total,
        "per_symbol": per_symbol,
        "connections": {
            "shards": len(feed.connections),
            "streaming": (
                feed.streaming_at_stop
                if feed.streaming_at_stop is not None
                else sum(1 for c in feed.connections if c.streaming)
            ),
            "streams": sum(len(shard.streams) for shard in feed.shards),
            "connects": sum(c.connects for c in connections),
            "reconnects": total["reconnects"],
            "failed_connects": sum(c.failed_connects for c in connections),
            "watchdog_timeouts": sum(c.watchdog_timeouts for c in connections),
            "rotations": sum(c.rotations for c in connections),
            "shutdown_notices": sum(c.shutdown_notices for c in connections),
            "control_errors": sum(c.control_errors for c in connections),
            "alerts": sum(c.alerts for c in connections),
            "reconnect_ms": {
                "count": len(reconnect_ms),
                "median": round(median(reconnect_ms), 1) if reconnect_ms else None,
                "max": round(max(reconnect_ms), 1) if reconnect_ms else None,
            },
        },
        "clock": {
            market.value: {
                "offset_ms": None if f.drift.offset_ms is None else round(f.drift.offset_ms, 3),
                "samples": f.drift.samples,
                "degraded": f.drift.degraded,
            }
            for market, f in feed.markets.items()
        },
        "problems": dict(sorted(feed.audit.problems.counts.items())),
        "elapsed_s": round(elapsed_s, 3),
        "messages_per_s": round(total["messages"] / elapsed_s, 1),
        "snapshots_requested": feed.snapshots_requested,
        "recorder": None if feed.recorder is None else vars(feed.recorder.stats).copy(),
        "redis": None if feed.redis is None else vars(feed.redis.stats).copy(),
    }


def status_line(feed: MarketDataFeed, messages_per_s: float) -> str:
    """One line: connections, rate, faults found, latency, degraded symbols."""
    connections = feed.connections
    streaming = sum(1 for c in connections if c.streaming)
    gaps = resyncs = drops = 0
    latency = LatencyHistogram()
    for slot in feed._slots.values():
        counters = slot.sequence.book.counters
        gaps += counters.gaps
        resyncs += counters.resyncs
        drops += slot.sequence.trades.counters.drops + slot.sequence.aggregate_trades.counters.drops
        latency.merge(slot.quality.latency)
    summary = latency.summary_ms()
    elapsed = (feed.clock.timestamp_ns() - feed.started_ns) / NANOS_PER_SECOND
    degraded = feed.audit.degraded_symbols()
    return (
        f"ingest {elapsed:7.1f}s | conns {streaming}/{len(connections)} | {messages_per_s:9.0f} msg/s | "
        f"gaps {gaps} resyncs {resyncs} drops {drops} | lag p50 {summary['p50']} p99 {summary['p99']} ms | "
        f"degraded {len(degraded)}{' ' + ','.join(degraded[:3]) if degraded else ''}"
    )
