"""The Parquet recorder: every market event, micro-batched, ZSTD, crash-safe (R-ST-1).

Hot path: `record(event)` appends to the buffer of the event's partition (market, stream, symbol,
UTC hour of `ts_event`): a tuple and a dict lookup, nothing else. `tick()`, called every few ms by
the ingest loop, does the rest:

- every `checkpoint_interval_ms` (the micro-batch, 20 ms) the rows received since the previous
  checkpoint go to the write-ahead log (`kestrel.storage.wal`) in one `os.write`: from then on a kill
  -9 cannot lose them;
- every `flush_interval_ms` the buffers are handed to a single writer thread as one batch, which
  writes one part per partition: rows sorted by `ts_event` (stable: arrival order breaks ties),
  written to ``.part-N.parquet.tmp``, fsynced, renamed to ``part-N.parquet``, the directory fsynced,
  the commit journalled. Then the batch's log segment is deleted. The event loop never waits on
  Parquet encoding, compression or fsync, and a whole market makes one file per partition per flush,
  not per checkpoint.

A reader therefore only ever sees complete files. After a kill -9 the next `start()` rescues the
logged rows into parts and reports the crash (see `journal`): only what arrived in the last
checkpoint interval is lost. Closing compacts every partition the session touched into one part.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kestrel.core.clock import Clock
from kestrel.core.errors import ConfigurationError, DataError
from kestrel.core.events import NANOS_PER_MILLI, MarketEvent
from kestrel.core.logs import get_logger
from kestrel.storage.journal import (
    BATCH_METADATA_KEY,
    SESSION_METADATA_KEY,
    JournalWriter,
    RecoveryReport,
    crashed_sessions,
    finish_compaction,
    read_journal,
)
from kestrel.storage.layout import (
    HOUR_NS,
    JOURNAL_DIR,
    MARKET_DIR,
    TMP_SUFFIX,
    Partition,
    list_parts,
    part_number,
)
from kestrel.storage.schema import STREAM_BY_NAME, STREAM_BY_TYPE, to_table
from kestrel.storage.wal import WalWriter, read_segment, segments

log = get_logger(__name__)

Compression = Literal["zstd", "snappy", "lz4", "none"]
_STREAM_NAME = {event_type: spec.name for event_type, spec in STREAM_BY_TYPE.items()}
COMPACTED_METADATA_KEY = b"kestrel.compacted_by"
WAL_DIR = "_wal"


@dataclass
class RecorderStats:
    rows_received: int = 0
    rows_written: int = 0
    files_written: int = 0
    bytes_written: int = 0
    log_bytes: int = 0
    flushes: int = 0
    compactions: int = 0
    write_errors: int = 0


def _sorted_by_ts_event(table: pa.Table) -> pa.Table:
    """The table sorted by ts_event, stably (arrival order breaks ties); untouched when already sorted.

    Sorting in Arrow (C++) rather than the Python list of events: several times faster."""
    stamps = table["ts_event"]
    if len(stamps) < 2 or pc.all(pc.greater_equal(stamps[1:], stamps[:-1])).as_py():
        return table
    return table.take(pc.sort_indices(table, sort_keys=[("ts_event", "ascending")]))


class _Buffer:
    __slots__ = ("events", "logged")

    def __init__(self) -> None:
        self.events: list[MarketEvent] = []
        self.logged = 0  # how many of `events` are in the write-ahead log already


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ParquetRecorder:
    """Records core market events under `root` (see `kestrel.storage.layout`)."""

    def __init__(
        self,
        root: Path,
        clock: Clock,
        *,
        compression: Compression = "zstd",
        compression_level: int = 3,
        flush_interval_ms: int = 30_000,
        checkpoint_interval_ms: int = 20,
        fsync: bool = True,
        compact_on_close: bool = True,
        write_ahead_log: bool = True,
    ) -> None:
        self.root = Path(root)
        self.clock = clock
        self.compression = None if compression == "none" else compression
        self.compression_level = compression_level if compression == "zstd" else None
        self.flush_interval_ns = flush_interval_ms * NANOS_PER_MILLI
        self.checkpoint_interval_ms = checkpoint_interval_ms
        self.checkpoint_interval_ns = checkpoint_interval_ms * NANOS_PER_MILLI
        self.fsync = fsync
        self.compact_on_close = compact_on_close
        self.write_ahead_log = write_ahead_log  # off for re-runnable jobs (imports): a crash loses the buffers
        self.stats = RecorderStats()
        self.session = ""
        self._buffers: dict[tuple[Any, str, str, int], _Buffer] = {}
        self._next_part: dict[Partition, int] = {}
        self._touched: set[Partition] = set()
        self._journal: JournalWriter | None = None
        self._wal: WalWriter | None = None
        self._batch = 0
        self._lock_fd = -1
        self._queue: queue.Queue[tuple[int, dict[Partition, list[MarketEvent]]] | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._writer_error: BaseException | None = None
        self._last_flush_ns = 0
        self._last_checkpoint_ns = 0

    # ---- life cycle ---------------------------------------------------------------------------
    def start(self) -> RecoveryReport:
        """Lock the root, recover what crashed sessions left, open this session's journal and log."""
        self.root.mkdir(parents=True, exist_ok=True)
        journal_dir = self.root / JOURNAL_DIR
        journal_dir.mkdir(exist_ok=True)
        self._lock_fd = os.open(journal_dir / "recorder.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = -1
            raise ConfigurationError(f"{self.root}: another recorder is writing here") from None
        now = self.clock.timestamp_ns()
        self.session = f"{now}-{os.getpid()}"
        # pyarrow imports pandas on its first Python→Arrow conversion (about a second): pay it now,
        # not in the middle of the first flush.
        pa.array([0], pa.int8())
        report = self._recover()
        self._journal = JournalWriter(journal_dir / f"session-{self.session}.jsonl")
        self._journal.write(
            {"op": "open", "session": self.session, "ts": now, "checkpoint_ms": self.checkpoint_interval_ms}
        )
        if self.write_ahead_log:
            self._wal = WalWriter(self.root / WAL_DIR / self.session)
        self._last_flush_ns = self._last_checkpoint_ns = now
        self._writer = threading.Thread(target=self._write_loop, name="kestrel-recorder", daemon=True)
        self._writer.start()
        return report

    def close(self) -> None:
        """Write everything, compact the session's partitions, mark the journal closed."""
        if self._journal is None:
            return
        self.flush(wait=True)
        self._queue.put(None)
        if self._writer is not None:
            self._writer.join()
        if self.compact_on_close:
            for partition in sorted(self._touched):
                self.compact_partition(partition)
        if self._wal is not None:
            self._wal.close(remove_directory=self._writer_error is None)
            self._wal = None
        self._journal.write({"op": "close", "ts": self.clock.timestamp_ns()})
        self._journal.close()
        self._journal = None
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
        self._raise_writer_error()

    def __enter__(self) -> ParquetRecorder:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ---- hot path -------------------------------------------------------------------------------
    def record(self, event: MarketEvent) -> None:
        key = (event.market, _STREAM_NAME[type(event)], event.symbol, event.ts_event // HOUR_NS)
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = _Buffer()
        buffer.events.append(event)

    def record_all(self, events: Iterable[MarketEvent]) -> None:
        record = self.record
        for event in events:
            record(event)

    def tick(self) -> None:
        """Checkpoint and flush when due; call it every few milliseconds."""
        now = self.clock.timestamp_ns()
        if now - self._last_checkpoint_ns >= self.checkpoint_interval_ns:
            self.checkpoint()
        if now - self._last_flush_ns >= self.flush_interval_ns:
            self.flush()
        self._raise_writer_error()

    @property
    def pending_rows(self) -> int:
        return sum(len(buffer.events) for buffer in self._buffers.values())

    def checkpoint(self) -> None:
        """Append the rows received since the last checkpoint to the write-ahead log (one write)."""
        self._last_checkpoint_ns = self.clock.timestamp_ns()
        if self._wal is None:
            return
        records = []
        for (market, stream, symbol, hour), buffer in self._buffers.items():
            if buffer.logged < len(buffer.events):
                fresh = buffer.events[buffer.logged :]
                records.append(self._wal.encode(Partition(market, stream, symbol, hour).relative, stream, fresh))
                buffer.logged = len(buffer.events)
        self._wal.append(records)
        self.stats.log_bytes = self._wal.bytes_written

    def flush(self, wait: bool = False) -> None:
        """Hand every buffer to the writer thread; with `wait`, return once they are on disk.

        Without `wait`, nothing is handed over while the writer is still busy with the previous batch:
        the buffers keep filling and go out as one larger batch next time (back-pressure: larger
        batches write faster per row, so the writer catches up).
        """
        if self._journal is None:
            raise DataError("recorder is not started")
        self.checkpoint()
        self._last_flush_ns = self.clock.timestamp_ns()
        if not wait and self._queue.unfinished_tasks:
            return
        batches: dict[Partition, list[MarketEvent]] = {}
        for (market, stream, symbol, hour), buffer in self._buffers.items():
            if buffer.events:
                batches[Partition(market, stream, symbol, hour)] = buffer.events
                self.stats.rows_received += len(buffer.events)
        self._buffers = {}
        if batches:
            batch = self._batch
            self._batch += 1
            if self._wal is not None:
                self._wal.rotate()  # segment `batch` holds exactly this batch's rows
            self._journal.write({"op": "flush", "batch": batch, "rows": sum(map(len, batches.values()))})
            self._queue.put((batch, batches))
        if wait:
            self._queue.join()
            self._raise_writer_error()

    # ---- the writer thread ----------------------------------------------------------------------
    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                batch, partitions = item
                for partition, events in partitions.items():
                    self._write_part(partition, events, str(batch))
                    time.sleep(0)  # let the event loop's thread take the GIL between files
                assert self._journal is not None
                self._journal.write({"op": "batch_done", "batch": batch})
                if self._wal is not None:
                    self._wal.remove(batch)
                self.stats.flushes += 1
            except BaseException as exc:  # keep the loop alive; the owner raises it on its next call
                self.stats.write_errors += 1
                self._writer_error = exc
                log.error("recorder write failed", error=str(exc))
            finally:
                self._queue.task_done()

    def _raise_writer_error(self) -> None:
        if self._writer_error is not None:
            error, self._writer_error = self._writer_error, None
            raise DataError(f"recorder could not write to {self.root}: {error}") from error

    def _allocate_part(self, partition: Partition, directory: Path) -> int:
        number = self._next_part.get(partition)
        if number is None:
            existing = [part_number(path) or 0 for path in list_parts(directory)]
            number = max(existing, default=-1) + 1
        self._next_part[partition] = number + 1
        return number

    def _write_table(self, table: pa.Table, directory: Path, name: str, metadata: dict[bytes, bytes]) -> int:
        tmp = directory / f".{name}{TMP_SUFFIX}"
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
        pq.write_table(
            table,
            tmp,
            compression=self.compression,
            compression_level=self.compression_level,
            write_statistics=True,
        )
        if self.fsync:
            with tmp.open("rb") as handle:
                os.fsync(handle.fileno())
        size = tmp.stat().st_size
        tmp.rename(directory / name)
        if self.fsync:
            _fsync_directory(directory)
        return size

    def _write_part(self, partition: Partition, events: list[MarketEvent], batch: str) -> None:
        directory = partition.directory(self.root)
        directory.mkdir(parents=True, exist_ok=True)
        name = f"part-{self._allocate_part(partition, directory)}.parquet"
        table = _sorted_by_ts_event(to_table(STREAM_BY_NAME[partition.stream], partition.market, events))
        metadata = {SESSION_METADATA_KEY: self.session.encode(), BATCH_METADATA_KEY: batch.encode()}
        size = self._write_table(table, directory, name, metadata)
        if self._journal is not None:
            self._journal.write(
                {
                    "op": "commit",
                    "batch": batch,
                    "partition": partition.relative,
                    "part": name,
                    "rows": len(events),
                    "first_ts": table["ts_event"][0].as_py(),
                    "last_ts": table["ts_event"][-1].as_py(),
                }
            )
        self._touched.add(partition)
        self.stats.rows_written += len(events)
        self.stats.files_written += 1
        self.stats.bytes_written += size

    # ---- recovery -------------------------------------------------------------------------------
    def _recover(self) -> RecoveryReport:
        """Repair and report what crashed sessions left (runs in `start`, before anything is written)."""
        report = RecoveryReport()
        market_dir = self.root / MARKET_DIR
        for tmp in sorted(market_dir.rglob(f"*{TMP_SUFFIX}")) if market_dir.is_dir() else []:
            report.torn_files_removed.append(tmp.relative_to(self.root).as_posix())
            tmp.unlink()
        for session, journal_path in crashed_sessions(self.root, self.session):
            found = self._recover_session(session, journal_path)
            report.sessions.append(session)
            report.recovered_rows += found.recovered_rows
            report.recovered_partitions += found.recovered_partitions
            report.already_on_disk_rows += found.already_on_disk_rows
            report.torn_log_bytes += found.torn_log_bytes
            report.lost_window_ms = max(report.lost_window_ms, found.lost_window_ms)
            report.compactions_finished += found.compactions_finished
        if not report.clean:
            log.warning("recorder recovery", summary=report.summary())
        return report

    def _recover_session(self, session: str, journal_path: Path) -> RecoveryReport:
        state = read_journal(journal_path)
        report = RecoveryReport(sessions=[session], lost_window_ms=state.checkpoint_ms)
        for record in state.compactions.values():
            finish_compaction(self.root, record)
            report.compactions_finished += 1
        log_dir = self.root / WAL_DIR / session
        for batch, path in segments(log_dir) if log_dir.is_dir() else []:
            records, torn = read_segment(path)
            report.torn_log_bytes += torn
            grouped: dict[str, list[MarketEvent]] = {}
            for relative, _, events in records:
                grouped.setdefault(relative, []).extend(events)
            for relative, events in sorted(grouped.items()):
                partition = Partition.parse(relative)
                if batch in state.batches_done or self._on_disk(partition, session, str(batch)):
                    report.already_on_disk_rows += len(events)
                    continue
                self._write_part(partition, events, f"recovered:{session}:{batch}")
                report.recovered_rows += len(events)
                report.recovered_partitions.append(relative)
        if log_dir.is_dir():
            for path in log_dir.iterdir():
                path.unlink()
            log_dir.rmdir()
        journal_dir = self.root / JOURNAL_DIR
        (journal_dir / f"recovery-{session}.json").write_text(json.dumps(report.as_dict(), indent=2))
        journal_path.rename(journal_path.with_name(journal_path.name + ".recovered"))
        return report

    def _on_disk(self, partition: Partition, session: str, batch: str) -> bool:
        """This batch's rows of `partition` are on disk already: written by the session just before the
        kill (its commit line may be missing), or by an earlier recovery that was itself cut short."""
        rescued = f"recovered:{session}:{batch}".encode()
        for path in list_parts(partition.directory(self.root)):
            with contextlib.suppress(OSError):
                metadata = pq.read_metadata(path).metadata or {}
                written = metadata.get(BATCH_METADATA_KEY)
                same_session = metadata.get(SESSION_METADATA_KEY) == session.encode()
                if written == rescued or (written == batch.encode() and same_session):
                    return True
        return False

    # ---- compaction -----------------------------------------------------------------------------
    def compact_partition(self, partition: Partition) -> bool:
        """Merge a partition's parts into one, crash-safely; True when there was something to merge.

        The merged table (sorted by ts_event, stable) goes to a temporary file that is fsynced; then
        a journal line names the sources and the target, the target is renamed into place, the sources
        are deleted and "compact_done" is journalled. Recovery finishes a compaction cut short (see
        `journal`). Only call it while no writes to the partition are queued.
        """
        directory = partition.directory(self.root)
        sources = list_parts(directory)
        if len(sources) < 2 or self._journal is None:
            return False
        table = _sorted_by_ts_event(pa.concat_tables([pq.read_table(path) for path in sources]))
        target = f"part-{self._allocate_part(partition, directory)}.parquet"
        tmp = directory / f".{target}{TMP_SUFFIX}"
        pq.write_table(
            # not SESSION_METADATA_KEY: recovery must not mistake merged rows for a batch's part
            table.replace_schema_metadata({COMPACTED_METADATA_KEY: self.session.encode()}),
            tmp,
            compression=self.compression,
            compression_level=self.compression_level,
        )
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        record = {"partition": partition.relative, "sources": [p.name for p in sources], "target": target}
        self._journal.write({"op": "compact", **record})
        self._journal.sync()
        tmp.rename(directory / target)
        _fsync_directory(directory)
        for path in sources:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._journal.write({"op": "compact_done", "partition": partition.relative})
        self.stats.compactions += 1
        return True
