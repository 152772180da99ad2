"""Recorded Parquet back as core events, in exchange-time order across symbols and streams (R-ST-4).

`replay_events` is a plain iterator of core events: the backtester, the feature pipeline and the
simulator all consume it. The order is total and deterministic, so every run yields the identical
sequence:

    (ts_event, stream rank, market, symbol, part number, row within the part)

Each part file is sorted by `ts_event` when written (ties in arrival order), so every part is a
sorted run and the replay is a k-way merge. Runs are opened lazily — a part is only read once the
merge reaches its first timestamp (from the Parquet statistics) — and read in small batches, so memory
stays bounded by what overlaps in time, not by the size of the recording.

`paced` / `apaced` re-emit at N× real time, taking time from a `Clock` (never the wall directly).
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pyarrow.parquet as pq

from kestrel.core.clock import Clock
from kestrel.core.enums import Market
from kestrel.core.errors import DataError
from kestrel.core.events import MarketEvent
from kestrel.storage.layout import HOUR_NS, Partition, iter_partitions, list_parts, part_number, resolve_root
from kestrel.storage.schema import STREAM_BY_NAME, StreamSpec, from_batch

SortKey = tuple[int, int, str, str, int, int]
EventT = TypeVar("EventT", bound=MarketEvent)


@dataclass(order=True, slots=True)
class _Run:
    first_ts: int
    order: tuple[int, str, str, int] = field(compare=True)  # rank, market, symbol, part: a total order
    path: Path = field(compare=False)
    spec: StreamSpec = field(compare=False)
    partition: Partition = field(compare=False)


def _first_ts_event(path: Path) -> int:
    metadata = pq.read_metadata(path)
    if metadata.num_rows == 0:
        return 2**63 - 1
    column = metadata.schema.names.index("ts_event")
    minimum = None
    for group in range(metadata.num_row_groups):
        statistics = metadata.row_group(group).column(column).statistics
        if statistics is None or not statistics.has_min_max:
            return -(2**63)  # unknown: open it first
        value = int(statistics.min)
        minimum = value if minimum is None else min(minimum, value)
    return minimum if minimum is not None else -(2**63)


def _select(
    root: Path,
    markets: Iterable[Market | str] | None,
    streams: Iterable[str] | None,
    symbols: Iterable[str] | None,
    start_ns: int | None,
    end_ns: int | None,
) -> list[_Run]:
    wanted_markets = {Market(m) for m in markets} if markets is not None else None
    wanted_streams = set(streams) if streams is not None else None
    if wanted_streams is not None:
        unknown = wanted_streams - STREAM_BY_NAME.keys()
        if unknown:
            raise DataError(f"unknown stream(s): {', '.join(sorted(unknown))} (known: {', '.join(STREAM_BY_NAME)})")
    wanted_symbols = {s.upper() for s in symbols} if symbols is not None else None
    runs = []
    for partition, directory in iter_partitions(root):
        spec = STREAM_BY_NAME.get(partition.stream)
        if spec is None:
            continue
        if wanted_markets is not None and partition.market not in wanted_markets:
            continue
        if wanted_streams is not None and partition.stream not in wanted_streams:
            continue
        if wanted_symbols is not None and partition.symbol not in wanted_symbols:
            continue
        if start_ns is not None and partition.start_ns + HOUR_NS <= start_ns:
            continue
        if end_ns is not None and partition.start_ns >= end_ns:
            continue
        for path in list_parts(directory):
            order = (spec.rank, partition.market.value, partition.symbol, part_number(path) or 0)
            runs.append(_Run(_first_ts_event(path), order, path, spec, partition))
    runs.sort()
    return runs


def _run_items(
    run: _Run, start_ns: int | None, end_ns: int | None, batch_rows: int
) -> Iterator[tuple[SortKey, MarketEvent]]:
    rank, market_name, symbol, part = run.order
    handle = pq.ParquetFile(run.path)
    row = 0
    for batch in handle.iter_batches(batch_size=batch_rows, columns=list(run.spec.fields)):
        for event in from_batch(run.spec, run.partition.market, symbol, batch):
            ts = event.ts_event
            row += 1
            if (start_ns is not None and ts < start_ns) or (end_ns is not None and ts >= end_ns):
                continue
            yield (ts, rank, market_name, symbol, part, row), event


def replay_events(
    root: str | Path,
    *,
    markets: Iterable[Market | str] | None = None,
    streams: Iterable[str] | None = None,
    symbols: Iterable[str] | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
    batch_rows: int = 2048,
) -> Iterator[MarketEvent]:
    """Every recorded event under `root` matching the filters, in exchange-time order.

    `streams` are storage names (`depth`, `book_ticker`, `trade`, `agg_trade`, `kline`, ...);
    `start_ns` is inclusive, `end_ns` exclusive (on `ts_event`). Raises DataError when `root` holds no
    recording or a stream name is unknown.
    """
    base = resolve_root(Path(root))
    if not base.is_dir():
        raise DataError(f"{root}: no such directory")
    pending = _select(base, markets, streams, symbols, start_ns, end_ns)
    pending.reverse()  # pop() from the end gives the earliest run
    heap: list[tuple[SortKey, MarketEvent, Iterator[tuple[SortKey, MarketEvent]]]] = []
    while heap or pending:
        while pending and (not heap or pending[-1].first_ts <= heap[0][0][0]):
            items = _run_items(pending.pop(), start_ns, end_ns, batch_rows)
            first = next(items, None)
            if first is not None:
                heapq.heappush(heap, (first[0], first[1], items))
        if not heap:
            continue
        _, event, items = heap[0]
        following = next(items, None)
        if following is None:
            heapq.heappop(heap)
        else:
            heapq.heapreplace(heap, (following[0], following[1], items))
        yield event


def _due_delay_ns(first_event_ns: int, start_clock_ns: int, ts_event: int, speed: float, now_ns: int) -> int:
    return start_clock_ns + int((ts_event - first_event_ns) / speed) - now_ns


def paced(
    events: Iterable[EventT],
    clock: Clock,
    speed: float,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[EventT]:
    """Re-emit `events` at `speed`× real time by their `ts_event`; `speed <= 0` means as fast as possible.

    Time is read from `clock`; `sleep(seconds)` waits (pass one that advances a SimClock in tests).
    """
    if speed <= 0:
        yield from events
        return
    first: int | None = None
    start = 0
    for event in events:
        if first is None:
            first, start = event.ts_event, clock.timestamp_ns()
        delay = _due_delay_ns(first, start, event.ts_event, speed, clock.timestamp_ns())
        if delay > 0:
            sleep(delay / 1e9)
        yield event


async def apaced(events: Iterable[EventT], clock: Clock, speed: float) -> AsyncIterator[EventT]:
    """`paced` for asyncio: waits with `asyncio.sleep`, so other tasks run meanwhile."""
    first: int | None = None
    start = 0
    for event in events:
        if speed > 0:
            if first is None:
                first, start = event.ts_event, clock.timestamp_ns()
            delay = _due_delay_ns(first, start, event.ts_event, speed, clock.timestamp_ns())
            if delay > 0:
                await asyncio.sleep(delay / 1e9)
        yield event
