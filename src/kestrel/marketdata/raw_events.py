"""The shared raw recordings (hftbacktest, cryptofeed) as core events, through the live parsers.

Frames go through the same decoders and the same `Sequencer` as live frames (cryptofeed's record/replay
seam), with the recorder's receive time as `ts_init`. Frames of markets Kestrel does not trade (COIN-M)
and streams it has no schema for are counted and skipped, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from kestrel.binance.websocket.frames import MalformedFrame, UnknownStream, decode_depth_snapshot, decode_payload
from kestrel.core.errors import DataError
from kestrel.core.events import MarketEvent
from kestrel.marketdata.sequencer import Sequencer
from kestrel.replay.raw import FrameKind, RawFrame, merge_by_local_time, read_raw
from kestrel.storage.schema import STREAM_BY_TYPE


@dataclass
class RawReadStats:
    frames: int = 0
    events: dict[str, int] = field(default_factory=dict)  # by storage stream name
    other_markets: int = 0  # COIN-M frames
    unknown_streams: dict[str, int] = field(default_factory=dict)
    malformed: int = 0


def _frames(paths: Iterable[str | Path]) -> Iterator[RawFrame]:
    sources = [read_raw(path) for path in paths]
    if not sources:
        raise DataError("no input files")
    return merge_by_local_time(sources)


def _raw_iterator(paths: Iterable[str | Path], sequencer: Sequencer, stats: RawReadStats) -> Iterator[MarketEvent]:
    for frame in _frames(paths):
        stats.frames += 1
        if frame.market is None:
            stats.other_markets += 1
            continue
        try:
            if frame.kind is FrameKind.SNAPSHOT:
                event: MarketEvent = decode_depth_snapshot(frame.payload, frame.market, frame.symbol, frame.ts_local_ns)
            else:
                event = decode_payload(frame.stream, frame.payload, frame.market, frame.ts_local_ns)
        except UnknownStream:
            stats.unknown_streams[frame.stream] = stats.unknown_streams.get(frame.stream, 0) + 1
            continue
        except MalformedFrame:
            stats.malformed += 1
            continue
        event, _ = sequencer.process(event)
        name = STREAM_BY_TYPE[type(event)].name
        stats.events[name] = stats.events.get(name, 0) + 1
        yield event


def raw_events(
    paths: Iterable[str | Path],
    *,
    order: Literal["received", "exchange"] = "received",
    sequencer: Sequencer | None = None,
    stats: RawReadStats | None = None,
) -> Iterator[MarketEvent]:
    """Core events of raw recording files (several files are merged by receive time).

    `order="received"` yields them as the recorder received them (what the live feed saw);
    `order="exchange"` in the replay order of recorded Parquet: (ts_event, stream rank, market, symbol,
    arrival) — it loads the files first, fine for the shared recordings (minutes long).
    Pass `sequencer` to inspect the books and sequence counters afterwards, `stats` for counts.
    """
    events = _raw_iterator(paths, sequencer or Sequencer(), stats if stats is not None else RawReadStats())
    if order == "received":
        return events
    keyed = sorted(
        enumerate(events),
        key=lambda item: (
            item[1].ts_event,
            STREAM_BY_TYPE[type(item[1])].rank,
            item[1].market.value,
            item[1].symbol,
            item[0],
        ),
    )
    return iter([event for _, event in keyed])
