"""The recorder's write-ahead log: every checkpoint's new rows, durable against kill -9 within ~20 ms.

Parquet parts are written every `recorder_flush_ms` (tens of seconds: one file per partition each
time, so a full market does not make thousands of files a second). Between two parts the rows live in
memory — and in this log: every checkpoint (20 ms by default) appends the rows received since the
previous one with a single `os.write` to an O_APPEND file. Once that call returns the bytes are in the
kernel, so a killed process loses only what arrived after its last checkpoint.

Segments follow the recorder's batches: segment k holds exactly the rows of batch k (the flush that
hands batch k to the writer rotates to segment k+1) and is deleted once batch k is on disk as Parquet.

Record: a 4-byte little-endian payload length, then msgpack ``[partition, stream, [events...]]`` with
the core events as msgspec encodes them. A torn last record (the kill came mid-write) is detected by
its length and reported.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from kestrel.core.events import MarketEvent
from kestrel.storage.schema import STREAM_BY_NAME

_LENGTH = struct.Struct("<I")
_ENCODER = msgspec.msgpack.Encoder()
_RECORD = msgspec.msgpack.Decoder(tuple[str, str, msgspec.Raw])
_EVENT_DECODERS = {name: msgspec.msgpack.Decoder(list[spec.event_type]) for name, spec in STREAM_BY_NAME.items()}  # type: ignore[name-defined]


def segment_path(directory: Path, number: int) -> Path:
    return directory / f"segment-{number:08d}.wal"


class WalWriter:
    """Appends records to the current segment of one session's log directory."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.segment = 0
        self._fd = os.open(segment_path(directory, 0), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.bytes_written = 0

    @staticmethod
    def encode(partition: str, stream: str, events: list[MarketEvent]) -> bytes:
        payload = _ENCODER.encode((partition, stream, events))
        return _LENGTH.pack(len(payload)) + payload

    def append(self, records: list[bytes]) -> None:
        """Write encoded records with one system call."""
        if records:
            data = b"".join(records)
            os.write(self._fd, data)
            self.bytes_written += len(data)

    def rotate(self) -> int:
        """Close the current segment and start the next; returns the closed segment's number."""
        closed = self.segment
        os.close(self._fd)
        self.segment += 1
        self._fd = os.open(segment_path(self.directory, self.segment), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        return closed

    def remove(self, number: int) -> None:
        segment_path(self.directory, number).unlink(missing_ok=True)

    def close(self, remove_directory: bool) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if remove_directory:
            for path in self.directory.glob("segment-*.wal"):
                path.unlink()
            self.directory.rmdir()


def read_segment(path: Path) -> tuple[list[tuple[str, str, list[MarketEvent]]], int]:
    """Every complete record of a segment, and the number of bytes of a torn record at its end."""
    data = path.read_bytes()
    records: list[tuple[str, str, list[MarketEvent]]] = []
    offset = 0
    while offset + _LENGTH.size <= len(data):
        (length,) = _LENGTH.unpack_from(data, offset)
        start = offset + _LENGTH.size
        if start + length > len(data):
            break
        try:
            partition, stream, raw = _RECORD.decode(data[start : start + length])
            records.append((partition, stream, _EVENT_DECODERS[stream].decode(raw)))
        except (msgspec.DecodeError, KeyError):
            break  # unreadable from here on: treat the rest as torn
        offset = start + length
    return records, len(data) - offset


def segments(directory: Path) -> Iterator[tuple[int, Path]]:
    """(number, path) of a log directory's segments, in order."""
    found: list[tuple[int, Path]] = []
    for path in directory.glob("segment-*.wal"):
        try:
            found.append((int(path.stem.removeprefix("segment-")), path))
        except ValueError:
            continue
    yield from sorted(found)


def event_count(records: list[tuple[str, str, list[Any]]]) -> int:
    return sum(len(events) for _, _, events in records)
