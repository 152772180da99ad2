"""`kestrel data import-raw`: the shared raw recordings into our Parquet layout, every update id kept.

Every decoded event is recorded, duplicates and all (flagged), with the recorder's receive time as
`ts_init`; depth snapshots are recorded too, so a replay can rebuild the books exactly as the feed did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kestrel.core.clock import Clock, LiveClock
from kestrel.marketdata.raw_events import RawReadStats, raw_events
from kestrel.marketdata.sequencer import Sequencer
from kestrel.storage.recorder import Compression, ParquetRecorder


@dataclass
class ImportReport:
    files: list[str]
    out: str
    frames: int = 0
    rows_written: int = 0
    events: dict[str, int] = field(default_factory=dict)
    other_markets_skipped: int = 0
    unknown_streams: dict[str, int] = field(default_factory=dict)
    malformed: int = 0
    symbols: dict[str, dict[str, Any]] = field(default_factory=dict)  # "market:SYMBOL" -> sequence counters


def import_raw(
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    clock: Clock | None = None,
    compression: Compression = "zstd",
    compression_level: int = 3,
) -> ImportReport:
    """Import raw recording files into `out` (several files are merged by receive time)."""
    stats = RawReadStats()
    sequencer = Sequencer()
    recorder = ParquetRecorder(
        Path(out),
        clock or LiveClock(),
        compression=compression,
        compression_level=compression_level,
        write_ahead_log=False,  # an import is simply run again
    )
    recorder.start()
    try:
        for count, event in enumerate(raw_events(paths, sequencer=sequencer, stats=stats), 1):
            recorder.record(event)
            if count % 200_000 == 0:
                recorder.flush(wait=True)
    finally:
        recorder.close()
    report = ImportReport(
        files=[str(path) for path in paths],
        out=str(out),
        frames=stats.frames,
        rows_written=recorder.stats.rows_written,
        events=dict(sorted(stats.events.items())),
        other_markets_skipped=stats.other_markets,
        unknown_streams=stats.unknown_streams,
        malformed=stats.malformed,
    )
    for (market, symbol), state in sorted(sequencer.symbols().items()):
        depth = state.book.counters
        report.symbols[f"{market.value}:{symbol}"] = {
            "depth_messages": depth.messages,
            "depth_gaps": depth.gaps,
            "depth_duplicates": depth.duplicates,
            "depth_out_of_order": depth.out_of_order,
            "resyncs": depth.resyncs,
            "trade_drops": state.trades.counters.drops,
            "aggregate_trade_drops": state.aggregate_trades.counters.drops,
            "book_synced": state.book.is_synced,
            "last_update_id": state.book.book.update_id,
        }
    return report
