"""Backtest inputs: recorded Binance frames and freqtrade feather candles → core market events.

`frames_to_events` is a small adapter from the raw recordings (`kestrel.replay.raw`) to
`kestrel.core.events`; the Binance wire parsers of `kestrel.binance.schemas` can replace it once they
cover every stream. Feather files are freqtrade's layout (SOURCES.md §6): `date` is the candle's open
time; `*-funding_rate` files hold the rate in `open`; `*-mark` files are mark-price candles.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from kestrel.binance.schemas.exchange_info import parse_exchange_info
from kestrel.core.enums import Market
from kestrel.core.errors import DataError
from kestrel.core.events import (
    NANOS_PER_MILLI,
    AggregateTrade,
    BookTicker,
    DepthSnapshot,
    DepthUpdate,
    FundingRate,
    Kline,
    MarketEvent,
    MarkPrice,
    Trade,
)
from kestrel.core.instrument import Instrument
from kestrel.replay.raw import FrameKind, RawFrame, read_raw

EXCHANGE_INFO_FILES = {
    Market.FUTURES: "exchange_info/usdm_exchangeInfo_2025-03-06_baouih.json",
    Market.SPOT: "exchange_info/spot_exchangeInfo_2024-09-08_TRADING-only_robo-investimentos.json",
}
INTERVAL_NS = {
    "1m": 60,
    "3m": 180,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "4h": 14400,
    "6h": 21600,
    "8h": 28800,
    "12h": 43200,
    "1d": 86400,
}
_FEATHER_NAME = re.compile(
    r"^(?P<base>[A-Z0-9]+)_(?P<quote>[A-Z0-9]+)(?:_(?P<settle>[A-Z0-9]+))?-(?P<interval>\d+[mhdw])(?:-(?P<kind>futures|mark|funding_rate|index|premiumIndex))?\.feather$"
)


def _levels(raw: object) -> list[tuple[float, float]]:
    if not isinstance(raw, list):
        return []
    return [(float(level[0]), float(level[1])) for level in raw]


def _ms(value: object) -> int:
    return int(str(value)) * NANOS_PER_MILLI


def frame_to_event(frame: RawFrame) -> MarketEvent | None:
    """One recorded frame as a core event (None for streams the backtest does not use)."""
    if frame.market is None:
        return None
    market, symbol, local = frame.market, frame.symbol, frame.ts_local_ns
    data = orjson.loads(frame.payload)
    if frame.kind is FrameKind.SNAPSHOT:
        ts = _ms(data["T"]) if "T" in data else local
        return DepthSnapshot(
            market, symbol, int(data["lastUpdateId"]), _levels(data["bids"]), _levels(data["asks"]), ts, local
        )
    kind = data.get("e") if isinstance(data, dict) else None
    if kind == "depthUpdate":
        ts = _ms(data.get("T", data["E"]))
        return DepthUpdate(
            market,
            symbol,
            int(data["U"]),
            int(data["u"]),
            int(data.get("pu", -1)),
            _levels(data["b"]),
            _levels(data["a"]),
            ts,
            local,
        )
    if kind == "trade":
        if data.get("X", "MARKET") != "MARKET":
            return None  # insurance-fund and ADL prints are not order-book trades
        return Trade(
            market, symbol, int(data["t"]), float(data["p"]), float(data["q"]), bool(data["m"]), _ms(data["T"]), local
        )
    if kind == "aggTrade":
        return AggregateTrade(
            market,
            symbol,
            int(data["a"]),
            float(data["p"]),
            float(data["q"]),
            int(data["f"]),
            int(data["l"]),
            bool(data["m"]),
            _ms(data["T"]),
            local,
        )
    if kind == "markPriceUpdate":
        return MarkPrice(
            market,
            symbol,
            float(data["p"]),
            float(data.get("i", 0)),
            float(data.get("P", 0)),
            float(data.get("r") or 0),
            _ms(data.get("T", 0)),
            _ms(data["E"]),
            local,
        )
    if kind == "kline":
        bar = data["k"]
        o, h, low, c, v, q = (float(bar[key]) for key in ("o", "h", "l", "c", "v", "q"))
        return Kline(
            market, symbol, str(bar["i"]), _ms(bar["t"]), _ms(bar["T"]), o, h, low, c, v, q,
            int(bar["n"]), float(bar["V"]), float(bar["Q"]), bool(bar["x"]), _ms(data["E"]), local,
        )  # fmt: skip
    if kind == "bookTicker" or (kind is None and "u" in data and "b" in data):
        ts = _ms(data["T"]) if "T" in data else local
        return BookTicker(
            market,
            symbol,
            int(data["u"]),
            float(data["b"]),
            float(data["B"]),
            float(data["a"]),
            float(data["A"]),
            ts,
            local,
        )
    return None


def frames_to_events(frames: Iterable[RawFrame]) -> Iterator[MarketEvent]:
    for frame in frames:
        event = frame_to_event(frame)
        if event is not None:
            yield event


def read_recording(path: Path) -> list[MarketEvent]:
    """Every usable event of one raw recording, in recorded (arrival) order."""
    return list(frames_to_events(read_raw(path)))


def recording_has_snapshot(path: Path) -> bool:
    return any(frame.kind is FrameKind.SNAPSHOT for frame in read_raw(path))


# ---- freqtrade feather files -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FeatherName:
    market: Market
    symbol: str
    interval: str
    kind: str  # candles, mark, funding_rate


def parse_feather_name(path: Path) -> FeatherName:
    match = _FEATHER_NAME.match(path.name)
    if match is None:
        raise DataError(f"{path.name}: not a freqtrade candle file name (like BTC_USDT-1h.feather)")
    market = Market.FUTURES if match["settle"] else Market.SPOT
    kind = match["kind"] or "candles"
    if kind == "futures":
        kind = "candles"
    return FeatherName(market, f"{match['base']}{match['quote']}", match["interval"], kind)


@dataclass(frozen=True, slots=True)
class Candles:
    """Columns of a candle file: open times (ns) and float prices."""

    open_time_ns: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    interval_ns: int

    def __len__(self) -> int:
        return int(self.open_time_ns.shape[0])

    def window(self, start_ns: int | None, end_ns: int | None) -> Candles:
        mask = np.ones(len(self), dtype=bool)
        if start_ns is not None:
            mask &= self.open_time_ns >= start_ns
        if end_ns is not None:
            mask &= self.open_time_ns < end_ns
        return Candles(
            self.open_time_ns[mask],
            self.open[mask],
            self.high[mask],
            self.low[mask],
            self.close[mask],
            self.volume[mask],
            self.interval_ns,
        )


def _column(table: object, name: str, arrow_type: str, dtype: type) -> np.ndarray:
    """A null-free numeric column as numpy, read straight from the Arrow buffers (pyarrow's own
    to_numpy imports pandas, seconds of start-up on every backtest)."""
    column = table.column(name).cast(arrow_type)  # type: ignore[attr-defined]
    parts: list[np.ndarray] = []
    for chunk in column.chunks:
        if chunk.null_count:
            raise DataError(f"column {name} has missing values")
        width = np.dtype(dtype).itemsize
        parts.append(np.frombuffer(chunk.buffers()[1], dtype=dtype, count=len(chunk), offset=chunk.offset * width))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def read_candles(path: Path) -> Candles:
    import pyarrow as pa  # feather v2 is an Arrow IPC file (pyarrow.feather would import pandas)

    if not path.exists():
        raise DataError(f"{path}: no such file")
    name = parse_feather_name(path)
    if name.interval not in INTERVAL_NS:
        raise DataError(f"{path.name}: unsupported interval {name.interval}")
    try:
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_file(source).read_all()
        unit = str(table.schema.field("date").type.unit)
        dates = _column(table, "date", "int64", np.int64)
        o, h, low, c, v = (_column(table, c, "float64", np.float64) for c in ("open", "high", "low", "close", "volume"))
    except (OSError, KeyError, ValueError, AttributeError, pa.ArrowException) as exc:
        raise DataError(f"{path}: not a readable feather candle file ({exc})") from None
    scale = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}[unit]
    return Candles(dates * scale, o, h, low, c, v, INTERVAL_NS[name.interval] * 1_000_000_000)


def candles_to_klines(candles: Candles, market: Market, symbol: str, interval: str) -> list[Kline]:
    """Closed klines; each is known at its close time (open + interval − 1 ms)."""
    klines = []
    step = candles.interval_ns - NANOS_PER_MILLI
    for opened, o, h, low, c, v in zip(
        candles.open_time_ns.tolist(), candles.open.tolist(), candles.high.tolist(), candles.low.tolist(),
        candles.close.tolist(), candles.volume.tolist(), strict=True,
    ):  # fmt: skip
        closed = opened + step
        klines.append(
            Kline(market, symbol, interval, opened, closed, o, h, low, c, v, 0.0, 0, 0.0, 0.0, True, closed, closed)
        )
    return klines


def read_funding(path: Path, symbol: str) -> list[FundingRate]:
    candles = read_candles(path)
    return [
        FundingRate(Market.FUTURES, symbol, rate, 0.0, ts, ts)
        for ts, rate in zip(candles.open_time_ns.tolist(), candles.open.tolist(), strict=True)
    ]


def read_marks(path: Path, symbol: str) -> list[MarkPrice]:
    """Mark-price candles as mark updates at each candle's open (no funding schedule: the rates come
    from funding files)."""
    candles = read_candles(path)
    return [
        MarkPrice(Market.FUTURES, symbol, price, price, 0.0, 0.0, 0, ts, ts)
        for ts, price in zip(candles.open_time_ns.tolist(), candles.open.tolist(), strict=True)
    ]


def marks_from_klines(klines: Sequence[Kline]) -> list[MarkPrice]:
    """Without recorded marks, each bar's close serves as the mark (so margin and liquidation still
    follow the price)."""
    return [MarkPrice(k.market, k.symbol, k.close, k.close, 0.0, 0.0, 0, k.ts_event, k.ts_init) for k in klines]


# ---- instruments -----------------------------------------------------------------------------------
def load_instruments(market: Market, symbols: Sequence[str], exchange_info: Path) -> list[Instrument]:
    try:
        payload = json.loads(exchange_info.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{exchange_info}: no such file") from None
    except ValueError as exc:
        raise DataError(f"{exchange_info}: not JSON ({exc})") from None
    known: dict[str, Instrument] = {str(i.symbol): i for i in parse_exchange_info(payload, market)}
    missing = [s for s in symbols if s not in known]
    if missing:
        raise DataError(f"{exchange_info.name}: no {market.value} instrument for {', '.join(missing)}")
    return [known[s] for s in symbols]
