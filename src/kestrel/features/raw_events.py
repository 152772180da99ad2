"""Adapter: recorded raw Binance frames (`kestrel.replay.raw.RawFrame`) → core market events.

A small stand-in until the market-data parsers (binance/schemas) land: it reads exactly the wire
fields of SOURCES.md for bookTicker, trade, aggTrade, depthUpdate, REST depth snapshots, markPrice,
forceOrder and kline. `ts_init` is the recorder's receive time; `ts_event` is the payload's event time
(`E`, or the trade time `T` for trades), or the receive time where the stream carries none (spot
bookTicker, spot REST snapshots).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import orjson

from kestrel.core.enums import Market, Side
from kestrel.core.errors import DataError
from kestrel.core.events import (
    AggregateTrade,
    BookTicker,
    DepthSnapshot,
    DepthUpdate,
    Kline,
    Liquidation,
    MarketEvent,
    MarkPrice,
    Trade,
)
from kestrel.replay.raw import FrameKind, RawFrame

MS = 1_000_000


def _levels(raw: object) -> list[tuple[float, float]]:
    if not isinstance(raw, list):
        raise DataError("depth levels must be a list")
    return [(float(level[0]), float(level[1])) for level in raw]


def _event_ns(data: dict[str, object], key: str, fallback: int) -> int:
    value = data.get(key)
    return int(value) * MS if isinstance(value, int) else fallback


def frame_to_event(frame: RawFrame) -> MarketEvent | None:
    """The core event of one frame; None for streams Kestrel's features do not use (or COIN-M)."""
    if frame.market is None:
        return None
    market: Market = frame.market
    data = orjson.loads(frame.payload)
    ts_init = frame.ts_local_ns
    if frame.kind is FrameKind.SNAPSHOT:
        return DepthSnapshot(
            market, frame.symbol, int(data["lastUpdateId"]), _levels(data["bids"]), _levels(data["asks"]),
            _event_ns(data, "E", ts_init), ts_init,
        )  # fmt: skip
    kind = frame.stream.split("@", 1)[1] if "@" in frame.stream else frame.stream
    if kind == "bookTicker":
        return BookTicker(
            market, frame.symbol, int(data["u"]), float(data["b"]), float(data["B"]), float(data["a"]),
            float(data["A"]), _event_ns(data, "E", ts_init), ts_init,
        )  # fmt: skip
    if kind == "trade":
        return Trade(
            market, frame.symbol, int(data["t"]), float(data["p"]), float(data["q"]), bool(data["m"]),
            _event_ns(data, "T", ts_init), ts_init,
        )  # fmt: skip
    if kind == "aggTrade":
        return AggregateTrade(
            market, frame.symbol, int(data["a"]), float(data["p"]), float(data["q"]), int(data["f"]),
            int(data["l"]), bool(data["m"]), _event_ns(data, "T", ts_init), ts_init,
        )  # fmt: skip
    if kind.startswith("depth"):
        return DepthUpdate(
            market, frame.symbol, int(data["U"]), int(data["u"]), int(data.get("pu", -1)),
            _levels(data["b"]), _levels(data["a"]), _event_ns(data, "E", ts_init), ts_init,
        )  # fmt: skip
    if kind.startswith("markPrice"):
        return MarkPrice(
            market, frame.symbol, float(data["p"]), float(data.get("i", "nan")), float(data.get("P", "nan")),
            float(data.get("r") or "nan"), int(data.get("T", 0)) * MS, _event_ns(data, "E", ts_init), ts_init,
        )  # fmt: skip
    if kind == "forceOrder":
        order = data["o"]
        return Liquidation(
            market, frame.symbol, Side(order["S"]), str(order["o"]), str(order["f"]), float(order["p"]),
            float(order["ap"]), float(order["q"]), float(order["z"]), str(order["X"]),
            _event_ns(order, "T", ts_init), ts_init,
        )  # fmt: skip
    if kind.startswith("kline"):
        k = data["k"]
        return Kline(
            market, frame.symbol, str(k["i"]), int(k["t"]) * MS, int(k["T"]) * MS, float(k["o"]), float(k["h"]),
            float(k["l"]), float(k["c"]), float(k["v"]), float(k["q"]), int(k["n"]), float(k["V"]), float(k["Q"]),
            bool(k["x"]), _event_ns(data, "E", ts_init), ts_init,
        )  # fmt: skip
    return None


def frames_to_events(frames: Iterable[RawFrame]) -> Iterator[MarketEvent]:
    """Core events of every frame Kestrel understands, in frame order."""
    for frame in frames:
        try:
            event = frame_to_event(frame)
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"{frame.source}: cannot read a {frame.stream} frame ({exc.__class__.__name__}: {exc})"
            ) from None
        if event is not None:
            yield event
