"""The recorder's journal and the recovery report.

Each recorder session appends JSON lines to ``_journal/session-<id>.jsonl`` with plain `os.write`
calls on an O_APPEND descriptor: a line is in the kernel as soon as the call returns, so a kill -9 of
the process loses none of them.

    {"op":"open", "session":..., "ts":..., "checkpoint_ms":...}
    {"op":"flush", "batch":k, "rows":...}                       batch k handed to the writer
    {"op":"commit", "batch":k, "partition":..., "part":"part-3.parquet", "rows":..., "first_ts":..., "last_ts":...}
    {"op":"batch_done", "batch":k}                               batch k is Parquet; its WAL segment goes
    {"op":"compact", "partition":..., "sources":[...], "target":"part-9.parquet"}
    {"op":"compact_done", "partition":...}
    {"op":"close", "ts":...}

On the next start a journal without "close" belongs to a session that died. Its write-ahead log
(`kestrel.storage.wal`) still holds every row that was not yet Parquet; the recorder writes those rows
as parts (skipping partitions whose part of that batch did reach the disk: each part carries its
session and batch in its Parquet metadata), deletes half-written files (`*.tmp`), finishes an
interrupted compaction, writes ``_journal/recovery-<session>.json`` and renames the journal
``*.recovered`` so the crash is reported exactly once. What is lost is what arrived after the last
checkpoint (at most `checkpoint_ms`), plus a torn log record, reported in bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kestrel.core.errors import DataError
from kestrel.storage.layout import JOURNAL_DIR, TMP_SUFFIX, Partition

SESSION_METADATA_KEY = b"kestrel.session"
BATCH_METADATA_KEY = b"kestrel.batch"


class JournalWriter:
    """Append-only, unbuffered JSON-lines writer (thread-safe)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        with self._lock:
            if self._fd < 0:
                raise DataError(f"{self.path}: journal is closed")
            os.write(self._fd, line)

    def sync(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


@dataclass
class RecoveryReport:
    """What crashed recorder sessions left behind, and what recovery did about it."""

    sessions: list[str] = field(default_factory=list)
    recovered_rows: int = 0  # rows rescued from the write-ahead log into Parquet parts
    recovered_partitions: list[str] = field(default_factory=list)
    already_on_disk_rows: int = 0  # logged rows whose part had been written just before the kill
    torn_log_bytes: int = 0  # an incomplete last log record (the kill came mid-write)
    lost_window_ms: int = 0  # rows received after the last checkpoint are lost: at most this long
    torn_files_removed: list[str] = field(default_factory=list)
    compactions_finished: int = 0

    @property
    def clean(self) -> bool:
        return not self.sessions

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if self.clean:
            return "previous recorder sessions closed cleanly; nothing lost"
        torn = f" and {self.torn_log_bytes} bytes of an incomplete log record" if self.torn_log_bytes else ""
        return (
            f"recovered {len(self.sessions)} crashed session(s): {self.recovered_rows} rows rescued from the "
            f"write-ahead log into {len(self.recovered_partitions)} partition(s); lost: what arrived in the last "
            f"{self.lost_window_ms} ms before the crash{torn}; removed {len(self.torn_files_removed)} incomplete "
            f"file(s), finished {self.compactions_finished} compaction(s)"
        )


@dataclass
class SessionJournal:
    """What a session's journal says."""

    closed: bool = False
    checkpoint_ms: int = 0
    batches_done: set[int] = field(default_factory=set)
    compactions: dict[str, dict[str, Any]] = field(default_factory=dict)  # unfinished, by partition


def read_journal(path: Path) -> SessionJournal:
    state = SessionJournal()
    with path.open("rb") as handle:
        for raw in handle:
            try:
                record = json.loads(raw)
            except ValueError:
                continue  # a torn last line: the process died mid-write
            op = record.get("op")
            if op == "open":
                state.checkpoint_ms = int(record.get("checkpoint_ms", 0))
            elif op == "batch_done":
                state.batches_done.add(int(record["batch"]))
            elif op == "compact":
                state.compactions[record["partition"]] = record
            elif op == "compact_done":
                state.compactions.pop(record["partition"], None)
            elif op == "close":
                state.closed = True
    return state


def finish_compaction(root: Path, record: dict[str, Any]) -> None:
    """Complete a compaction cut short: target in place ⇒ drop the sources; else drop the temporary."""
    directory = Partition.parse(record["partition"]).directory(root)
    target = directory / record["target"]
    if target.exists():
        for name in record["sources"]:
            with contextlib.suppress(FileNotFoundError):
                (directory / name).unlink()
    else:
        with contextlib.suppress(FileNotFoundError):
            (directory / f".{record['target']}{TMP_SUFFIX}").unlink()


def crashed_sessions(root: Path, current_session: str) -> list[tuple[str, Path]]:
    """(session, journal path) of every session that did not close, oldest first."""
    journal_dir = root / JOURNAL_DIR
    found = []
    for path in sorted(journal_dir.glob("session-*.jsonl")):
        session = path.name.removeprefix("session-").removesuffix(".jsonl")
        if session != current_session and not read_journal(path).closed:
            found.append((session, path))
    return found


def previous_recoveries(root: Path) -> list[dict[str, Any]]:
    """Every recovery report written so far (for `kestrel data info`)."""
    journal_dir = root / JOURNAL_DIR
    if not journal_dir.is_dir():
        return []
    reports = []
    for path in sorted(journal_dir.glob("recovery-*.json")):
        try:
            reports.append(json.loads(path.read_text()))
        except ValueError:
            continue
    return reports
