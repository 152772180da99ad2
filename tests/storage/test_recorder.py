"""The Parquet recorder: layout, exact round trip, micro-batches, compaction, crash recovery."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from kestrel.core.clock import SimClock
from kestrel.core.enums import Market
from kestrel.core.errors import ConfigurationError
from kestrel.core.events import MarketEvent
from kestrel.replay.recorded import replay_events
from kestrel.storage.layout import JOURNAL_DIR, Partition, iter_partitions, list_parts
from kestrel.storage.recorder import ParquetRecorder
from kestrel.storage.schema import STREAM_BY_TYPE
from tests.storage.factory import START_NS, sample_events

ROOT = Path(__file__).resolve().parents[2]


def expected_order(events: list[MarketEvent]) -> list[MarketEvent]:
    keyed = sorted(
        range(len(events)),
        key=lambda i: (
            events[i].ts_event,
            STREAM_BY_TYPE[type(events[i])].rank,
            events[i].market.value,
            events[i].symbol,
            i,
        ),
    )
    return [events[i] for i in keyed]


def all_parquet(root: Path) -> list[Path]:
    return sorted((root / "market").rglob("*.parquet"))


def test_layout_round_trip_and_compaction(tmp_path: Path) -> None:
    events = sample_events(3000)
    clock = SimClock(START_NS)
    recorder = ParquetRecorder(tmp_path, clock, flush_interval_ms=100)
    report = recorder.start()
    assert report.clean
    for index, event in enumerate(events):
        recorder.record(event)
        if index % 50 == 0:
            clock.advance_to(clock.timestamp_ns() + 30_000_000)
            recorder.tick()
    recorder.flush(wait=True)
    assert recorder.stats.files_written > len(iter_partitions(tmp_path))  # several micro-batches per partition
    recorder.close()
    assert recorder.stats.rows_written == len(events)
    partitions = iter_partitions(tmp_path)
    assert {p.hour for p, _ in partitions} == {START_NS // 3_600_000_000_000, START_NS // 3_600_000_000_000 + 1}
    for partition, directory in partitions:
        parts = list_parts(directory)
        assert [p.name for p in parts] and len(parts) == 1, partition  # compacted on close
        assert directory.relative_to(tmp_path).as_posix().startswith(f"market/{partition.market.value}/")
        metadata = pq.read_metadata(parts[0])
        assert metadata.num_rows > 0
    example = Partition(Market.FUTURES, "depth", "BTCUSDT", START_NS // 3_600_000_000_000)
    assert (
        example.directory(tmp_path).as_posix().endswith("market/futures/depth/symbol=BTCUSDT/date=2024-08-08/hour=23")
    )
    table = pq.read_table(list_parts(example.directory(tmp_path))[0])
    assert table.schema.field("bids").type.value_type.names == ["price", "quantity"]
    assert pq.read_metadata(list_parts(example.directory(tmp_path))[0]).row_group(0).column(0).compression == "ZSTD"
    replayed = list(replay_events(tmp_path))
    assert replayed == expected_order(events)


def test_replay_is_identical_every_run_and_filters(tmp_path: Path) -> None:
    events = sample_events(1500, seed=3)
    clock = SimClock(START_NS)
    with ParquetRecorder(tmp_path, clock, compact_on_close=False) as recorder:
        for chunk in range(0, len(events), 200):
            recorder.record_all(events[chunk : chunk + 200])
            recorder.flush(wait=True)
    first = list(replay_events(tmp_path))
    assert first == list(replay_events(tmp_path)) == expected_order(events)
    only = list(replay_events(tmp_path, markets=["spot"], streams=["trade", "depth"], symbols=["btcusdt"]))
    assert only == [
        e for e in expected_order(events) if e.market is Market.SPOT and e.symbol == "BTCUSDT"
        and STREAM_BY_TYPE[type(e)].name in ("trade", "depth")
    ]  # fmt: skip
    start, end = START_NS + 20 * 10**9, START_NS + 50 * 10**9
    window = list(replay_events(tmp_path, start_ns=start, end_ns=end))
    assert window == [e for e in expected_order(events) if start <= e.ts_event < end] and window


def test_second_recorder_on_the_same_root_is_refused(tmp_path: Path) -> None:
    with ParquetRecorder(tmp_path, SimClock(START_NS)), pytest.raises(ConfigurationError, match="another recorder"):
        ParquetRecorder(tmp_path, SimClock(START_NS)).start()


def test_torn_files_and_an_interrupted_compaction_are_repaired(tmp_path: Path) -> None:
    events = sample_events(400)
    clock = SimClock(START_NS)
    with ParquetRecorder(tmp_path, clock, compact_on_close=False) as recorder:
        recorder.record_all(events[:200])
        recorder.flush(wait=True)
        recorder.record_all(events[200:])
    partition, directory = iter_partitions(tmp_path)[0]
    parts = list_parts(directory)
    # a torn write and a compaction cut off after its rename, before the sources were deleted
    (directory / ".part-7.parquet.tmp").write_bytes(b"PAR1 half a file")
    merged = directory / "part-9.parquet"
    merged.write_bytes(parts[0].read_bytes())
    journal = tmp_path / JOURNAL_DIR / "session-1-1.jsonl"
    compact = {
        "op": "compact",
        "partition": partition.relative,
        "sources": [p.name for p in parts],
        "target": merged.name,
    }
    journal.write_text(json.dumps({"op": "open", "session": "1-1"}) + "\n" + json.dumps(compact) + "\n")
    recorder = ParquetRecorder(tmp_path, clock)
    report = recorder.start()
    recorder.close()
    assert report.sessions == ["1-1"] and report.compactions_finished == 1 and report.recovered_rows == 0
    assert report.torn_files_removed == [f"market/{partition.relative}/.part-7.parquet.tmp"]
    assert not list((tmp_path / "market").rglob("*.tmp"))
    assert merged.exists() and not any(p.exists() for p in parts if p != merged)
    assert (tmp_path / JOURNAL_DIR / "session-1-1.jsonl.recovered").exists()
    assert (tmp_path / JOURNAL_DIR / "recovery-1-1.json").exists()
    again = ParquetRecorder(tmp_path, clock)
    assert again.start().clean  # reported once only
    again.close()


CHILD = """
import sys
import time
from pathlib import Path
from kestrel.core.clock import LiveClock
from kestrel.storage.recorder import ParquetRecorder
from tests.storage.factory import sample_events

flush_ms = int(sys.argv[2])
recorder = ParquetRecorder(Path(sys.argv[1]), LiveClock(), flush_interval_ms=flush_ms, checkpoint_interval_ms=5)
recorder.start()
events = sample_events(4000, seed=11)
print("started", flush=True)
while True:  # about 20,000 events/s, a busy market; a kill always finds an open micro-batch
    for index, event in enumerate(events):
        recorder.record(event)
        recorder.tick()
        if index % 100 == 99:
            time.sleep(0.005)
"""


def partition_counts(events: list[MarketEvent]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in events:
        key = Partition(
            event.market, STREAM_BY_TYPE[type(event)].name, event.symbol, event.ts_event // 3_600_000_000_000
        )
        counts[key.relative] = counts.get(key.relative, 0) + 1
    return counts


@pytest.mark.slow
@pytest.mark.parametrize("flush_ms", [40, 60_000], ids=["parts-every-40ms", "all-in-the-log"])
def test_kill_9_loses_only_the_last_checkpoint_and_the_restart_rescues_the_rest(tmp_path: Path, flush_ms: int) -> None:
    """The child records a known, repeating stream. After kill -9 and a restart, the recording holds
    exactly the first N events of that stream for some N (nothing reordered, doubled or skipped): what
    is lost is only the tail after the last checkpoint. Every file is readable."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path), str(flush_ms)], stdout=subprocess.PIPE, env=env, cwd=ROOT
    )
    assert child.stdout is not None and child.stdout.readline().strip() == b"started"
    wal = next((tmp_path / "_wal").iterdir())
    deadline = time.monotonic() + 60
    while sum(p.stat().st_size for p in wal.glob("*.wal")) < 200_000 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    for path in all_parquet(tmp_path):
        pq.read_table(path)  # whatever is on disk is complete
    recorder = ParquetRecorder(tmp_path, SimClock(START_NS))
    report = recorder.start()
    recorder.close()
    assert len(report.sessions) == 1 and report.lost_window_ms == 5
    if flush_ms == 60_000:
        assert report.recovered_rows > 0  # nothing had become Parquet: the log held it all
    on_disk: dict[str, int] = {}
    for path in all_parquet(tmp_path):
        key = path.parent.relative_to(tmp_path / "market").as_posix()
        on_disk[key] = on_disk.get(key, 0) + pq.read_metadata(path).num_rows
    total = sum(on_disk.values())
    stream = sample_events(4000, seed=11)
    cycles, rest = divmod(total, len(stream))
    expected = partition_counts(stream * cycles + stream[:rest])
    assert on_disk == expected  # exactly a prefix of what was recorded
    assert total > 4000
    assert not list((tmp_path / "market").rglob("*.tmp"))
    assert not (tmp_path / "_wal").exists() or not any((tmp_path / "_wal").iterdir())
    assert (tmp_path / JOURNAL_DIR / f"recovery-{report.sessions[0]}.json").exists()
