"""Readers of raw Binance recordings: the frames exactly as they came off the wire.

Two layouts are understood (see ../shared/data/binance/SOURCES.md):

- hftbacktest: ``<local_receive_ts> <json>`` per line; the JSON is a combined-stream envelope
  ``{"stream": ..., "data": ...}`` or a bare REST depth snapshot. The local timestamp is in ns
  (2024 files) or µs (2023 ``*.dat.gz`` files); we detect the unit from its magnitude.
- cryptofeed: ``*.ws.*`` files start with ``<url> <-> <connect seconds>`` then ``<seconds>: <json>``
  lines; ``*.http.*`` files hold ``<url> -> <seconds>: <json>`` REST responses (depth snapshots).

Frames keep the raw JSON text so a simulator can send it byte for byte and a parser sees exactly what
the exchange sent (cryptofeed's record/replay seam: the same parser for live and recorded frames).
"""

from __future__ import annotations

import gzip
import heapq
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson

from kestrel.core.enums import Market
from kestrel.core.errors import DataError


class FrameKind(StrEnum):
    STREAM = "stream"  # a combined-stream message: `stream` names it, `payload` is the `data` object
    SNAPSHOT = "snapshot"  # a REST depth snapshot: `payload` is the response body


@dataclass(frozen=True, slots=True)
class RawFrame:
    """One recorded frame. `ts_local_ns` is the recorder's receive time (its clock, not Binance's)."""

    ts_local_ns: int
    kind: FrameKind
    market: Market | None  # None for markets Kestrel does not trade (COIN-M)
    symbol: str  # upper case
    stream: str  # e.g. "btcusdt@depth@0ms"; "depth_snapshot" for snapshots
    payload: bytes  # the JSON of `data` (streams) or the REST body (snapshots)
    source: str  # file name, for messages and lineage

    def json(self) -> dict[str, object]:
        value = orjson.loads(self.payload)
        if not isinstance(value, dict):
            raise DataError(f"{self.source}: frame payload is not an object")
        return value


_STREAM_FIELD = re.compile(rb'^\{"stream":"([^"]+)","data":(.*)\}$', re.DOTALL)


def _market_from_path(path: Path) -> Market | None:
    text = str(path).lower()
    if "coinm" in text or "delivery" in text:
        return None
    if "usdm" in text or "futures" in text:
        return Market.FUTURES
    return Market.SPOT


def _to_ns(stamp: int) -> int:
    # ns stamps of this era are ~1.7e18; µs ~1.7e15; ms ~1.7e12
    if stamp >= 10**17:
        return stamp
    if stamp >= 10**14:
        return stamp * 1_000
    return stamp * 1_000_000


def _seconds_to_ns(text: str) -> int:
    whole, _, fraction = text.strip().partition(".")
    fraction = (fraction + "000000000")[:9]
    return int(whole) * 1_000_000_000 + int(fraction)


def _split_envelope(body: bytes, source: str) -> tuple[str, bytes]:
    match = _STREAM_FIELD.match(body)
    if match is not None:
        return match.group(1).decode(), match.group(2)
    value = orjson.loads(body)  # slower path for envelopes with other key order
    if not isinstance(value, dict) or "stream" not in value or "data" not in value:
        raise DataError(f"{source}: not a combined-stream envelope")
    return str(value["stream"]), orjson.dumps(value["data"])


def _symbol_from_stream(stream: str) -> str:
    return stream.split("@", 1)[0].upper()


def _open_lines(path: Path) -> Iterator[bytes]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        for line in handle:
            line = line.rstrip(b"\r\n")
            if line:
                yield line


def read_hftbacktest(path: str | Path, symbol: str | None = None) -> Iterator[RawFrame]:
    """Frames of one hftbacktest file in file order. `symbol` names the snapshot's symbol
    (bare snapshots do not carry it); by default it is taken from the file name."""
    path = Path(path)
    market = _market_from_path(path)
    own_symbol = (symbol or path.name.split("_")[0]).upper()
    if market is None and "_perp" in path.name:
        own_symbol = "_".join(path.name.split("_")[:2]).upper()
    for number, line in enumerate(_open_lines(path), 1):
        stamp, _, body = line.partition(b" ")
        try:
            ts = _to_ns(int(stamp))
            if body.startswith(b'{"stream"'):
                stream, data = _split_envelope(body, path.name)
                yield RawFrame(ts, FrameKind.STREAM, market, _symbol_from_stream(stream), stream, data, path.name)
            elif b'"lastUpdateId"' in body[:40]:
                yield RawFrame(ts, FrameKind.SNAPSHOT, market, own_symbol, "depth_snapshot", body, path.name)
            else:
                raise DataError("unrecognised line")
        except (ValueError, DataError) as exc:
            raise DataError(f"{path.name}:{number}: {exc}") from None


def read_cryptofeed_ws(path: str | Path) -> Iterator[RawFrame]:
    path = Path(path)
    market = _market_from_path(path)
    for number, line in enumerate(_open_lines(path), 1):
        if number == 1 and b" <-> " in line:
            continue  # the connection header
        stamp, sep, body = line.partition(b": ")
        if not sep:
            raise DataError(f"{path.name}:{number}: missing '<seconds>: ' prefix")
        try:
            stream, data = _split_envelope(body, path.name)
            ts = _seconds_to_ns(stamp.decode())
        except ValueError as exc:
            raise DataError(f"{path.name}:{number}: {exc}") from None
        yield RawFrame(ts, FrameKind.STREAM, market, _symbol_from_stream(stream), stream, data, path.name)


def read_cryptofeed_http(path: str | Path) -> Iterator[RawFrame]:
    """Depth snapshots of a cryptofeed REST log; other responses are skipped."""
    path = Path(path)
    market = _market_from_path(path)
    for number, line in enumerate(_open_lines(path), 1):
        head, sep, body = line.partition(b": ")
        if not sep or b" -> " not in head:
            raise DataError(f"{path.name}:{number}: expected '<url> -> <seconds>: <json>'")
        url, _, stamp = head.decode().partition(" -> ")
        parts = urlsplit(url)
        if not parts.path.endswith("/depth"):
            continue
        symbol = parse_qs(parts.query).get("symbol", [""])[0].upper()
        yield RawFrame(_seconds_to_ns(stamp), FrameKind.SNAPSHOT, market, symbol, "depth_snapshot", body, path.name)


def read_raw(path: str | Path) -> Iterator[RawFrame]:
    """Any supported raw recording, chosen by file name."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    name = path.name
    if ".ws." in name:
        return read_cryptofeed_ws(path)
    if ".http." in name:
        return read_cryptofeed_http(path)
    return read_hftbacktest(path)


def merge_by_local_time(sources: Iterable[Iterator[RawFrame]]) -> Iterator[RawFrame]:
    """Merge several files' frames by receive time; ties keep the sources' order (stable).

    Each input must already be in local-time order (SOURCES.md checks that for the shared files).
    """
    keyed = [
        (((frame.ts_local_ns, index, position), frame) for position, frame in enumerate(source))
        for index, source in enumerate(sources)
    ]
    for _, frame in heapq.merge(*keyed, key=lambda item: item[0]):
        yield frame
