"""The recorder's journal and crash recovery.

Each recorder session appends JSON lines to ``_journal/session-<id>.jsonl`` with plain `os.write`
calls on an O_APPEND descriptor: a line is in the kernel as soon as the call returns, so a kill -9 of
the process loses none of them (only a power cut could, and the recorder fsyncs data files anyway).

    {"op":"open", "session":..., "ts":...}
    {"op":"received", "rows": {partition: [rows, first_ts_event, last_ts_event]}}   every checkpoint
    {"op":"flush", "rows":...}                       a batch handed to the writer (at most one in flight)
    {"op":"commit", "partition":..., "part":"part-3.parquet", "rows":..., "first_ts":..., "last_ts":...}
    {"op":"compact", "partition":..., "sources":[...], "target":"part-9.parquet"}
    {"op":"compact_done", "partition":...}
    {"op":"close", "ts":...}

On the next start, a journal without "close" belongs to a session that died. For every partition,
rows received minus rows committed were lost (the open micro-batch); parts written but not yet
journalled are recognised by the session id in their Parquet metadata. Half-written files (`*.tmp`) are
deleted and an interrupted compaction is finished (target present: delete the sources; absent: delete
the temporary target). The findings go to ``_journal/recovery-<session>.json`` and the journal is
renamed ``*.recovered`` so the loss is reported exactly once.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from kestrel.core.errors import DataError
from kestrel.core.logs import get_logger
from kestrel.storage.layout import JOURNAL_DIR, MARKET_DIR, TMP_SUFFIX, Partition, list_parts

SESSION_METADATA_KEY = b"kestrel.session"
log = get_logger(__name__)


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
class PartitionLoss:
    rows: int
    first_ts_event: int | None
    last_ts_event: int | None


@dataclass
class RecoveryReport:
    """What a previous, crashed recorder session lost and what recovery cleaned up."""

    sessions: list[str] = field(default_factory=list)
    lost_rows: int = 0
    lost: dict[str, PartitionLoss] = field(default_factory=dict)  # partition -> loss
    torn_files_removed: list[str] = field(default_factory=list)
    compactions_finished: int = 0
    unjournalled_parts: int = 0  # parts written just before the kill, before their commit line

    @property
    def clean(self) -> bool:
        return not self.sessions

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if self.clean:
            return "previous recorder sessions closed cleanly; nothing lost"
        return (
            f"recovered {len(self.sessions)} crashed session(s): lost {self.lost_rows} rows in "
            f"{len(self.lost)} partition(s), removed {len(self.torn_files_removed)} incomplete file(s), "
            f"finished {self.compactions_finished} compaction(s)"
        )


@dataclass
class _SessionState:
    received: dict[str, list[int]] = field(default_factory=dict)  # partition -> [rows, first, last]
    committed: dict[str, int] = field(default_factory=dict)
    committed_parts: dict[str, set[str]] = field(default_factory=dict)
    compactions: dict[str, dict[str, Any]] = field(default_factory=dict)  # unfinished, by partition
    closed: bool = False


def _read_journal(path: Path) -> _SessionState:
    state = _SessionState()
    with path.open("rb") as handle:
        for raw in handle:
            try:
                record = json.loads(raw)
            except ValueError:
                continue  # a torn last line: the process died mid-write
            op = record.get("op")
            if op == "received":
                for partition, (rows, first, last) in record["rows"].items():
                    entry = state.received.setdefault(partition, [0, first, last])
                    entry[0] += rows
                    entry[1] = min(entry[1], first)
                    entry[2] = max(entry[2], last)
            elif op == "commit":
                partition = record["partition"]
                state.committed[partition] = state.committed.get(partition, 0) + int(record["rows"])
                state.committed_parts.setdefault(partition, set()).add(record["part"])
            elif op == "compact":
                state.compactions[record["partition"]] = record
            elif op == "compact_done":
                state.compactions.pop(record["partition"], None)
            elif op == "close":
                state.closed = True
    return state


def _finish_compaction(root: Path, record: dict[str, Any]) -> None:
    directory = Partition.parse(record["partition"]).directory(root)
    target = directory / record["target"]
    if target.exists():
        for name in record["sources"]:
            with contextlib.suppress(FileNotFoundError):
                (directory / name).unlink()
    else:
        with contextlib.suppress(FileNotFoundError):
            (directory / f".{record['target']}{TMP_SUFFIX}").unlink()


def _unjournalled_rows(root: Path, partition: str, session: str, known: set[str]) -> tuple[int, int]:
    """Rows (and parts) this session wrote to `partition` whose commit line never made it."""
    rows = parts = 0
    for path in list_parts(Partition.parse(partition).directory(root)):
        if path.name in known:
            continue
        try:
            metadata = pq.read_metadata(path)
        except OSError:
            continue
        if (metadata.metadata or {}).get(SESSION_METADATA_KEY) == session.encode():
            rows += metadata.num_rows
            parts += 1
    return rows, parts


def _recover_session(root: Path, session: str, state: _SessionState) -> RecoveryReport:
    report = RecoveryReport(sessions=[session])
    for record in state.compactions.values():
        _finish_compaction(root, record)
        report.compactions_finished += 1
    for partition, (rows, first, last) in sorted(state.received.items()):
        missing = rows - state.committed.get(partition, 0)
        if missing > 0:
            known = state.committed_parts.get(partition, set())
            found, parts = _unjournalled_rows(root, partition, session, known)
            report.unjournalled_parts += parts
            missing -= found
        if missing > 0:
            report.lost[partition] = PartitionLoss(missing, first, last)
            report.lost_rows += missing
    return report


def recover(root: Path, current_session: str) -> RecoveryReport:
    """Examine every other session's journal; repair and report what crashed sessions left behind."""
    report = RecoveryReport()
    journal_dir = root / JOURNAL_DIR
    for tmp in sorted((root / MARKET_DIR).rglob(f"*{TMP_SUFFIX}")) if (root / MARKET_DIR).is_dir() else []:
        report.torn_files_removed.append(tmp.relative_to(root).as_posix())
        tmp.unlink()
    if not journal_dir.is_dir():
        return report
    for path in sorted(journal_dir.glob("session-*.jsonl")):
        session = path.name.removeprefix("session-").removesuffix(".jsonl")
        if session == current_session:
            continue
        state = _read_journal(path)
        if state.closed:
            continue
        found = _recover_session(root, session, state)
        (journal_dir / f"recovery-{session}.json").write_text(json.dumps(found.as_dict(), indent=2))
        path.rename(path.with_name(path.name + ".recovered"))
        report.sessions.append(session)
        report.lost_rows += found.lost_rows
        report.lost.update(found.lost)
        report.compactions_finished += found.compactions_finished
        report.unjournalled_parts += found.unjournalled_parts
    if not report.clean:
        log.warning("recorder recovery", summary=report.summary(), lost_rows=report.lost_rows)
    return report


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
