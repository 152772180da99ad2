"""Microstructure and data-quality features (R-FE-2, R-FE-3, R-FE-4), streaming and batch.

`MicrostructureFeatures` is the incremental API (backtest and live): `on_event(event)` folds one core
market event in, O(1) per event except book changes (O(levels changed) plus O(levels within 25 bps)).
`events_table` turns events into a columnar table (Parquet/DuckDB/polars) and `compute_micro_features`
runs the same compiled handlers over it in one compiled loop — same numbers (parity test).

Time is the event's arrival time `ts_init`: a feature at t uses exactly the events received by t.

Features (windowed ones once per configured window w, as exponential decays with τ = w):
- spread_bps, qi = (bidQty − askQty)/(bidQty + askQty), microprice_bps (microprice − mid, bps),
  liq_score = min(depth_top1_usdt / threshold, 1);
- ofi_{w}: order-flow imbalance of the best quotes (Cont, Kukanov & Stoikov 2014), decayed sum;
- dmid_bps_{w}: mid against its decayed mean (Δmid); micro_trend_bps: fastest minus slowest mean;
- trade_sign_{w}: mean aggressor sign; trade_rate_{w}: trades per second;
- vwap_distance_bps_{w}: mid against the decayed VWAP;
- kyle_lambda_{w}: Δmid (bps) per signed notional between quote updates, through the origin,
  in bps per 1M USDT;
- cancel_new_ratio_{w}: cancelled over added book quantity (removals beyond traded volume are cancels);
- rv_ratio: realised volatility of the mid, fastest over slowest window;
- queue_imbalance_5/20: imbalance of the top 5/20 levels; depth_slope_bid/ask: cumulative notional per
  bps of distance over the top 10 levels; near_touch_void = 1 − notional within 5 bps / within 25 bps;
- funding_rate, funding_delta (Δf: against the last settled rate), mark_basis_bps, oi_delta (ΔOI
  against its decayed mean), liquidation_rate (USDT/s over the slowest window);
- latency_ms = ts_init − ts_event, latency_z, clock_offset_ms (decayed mean latency), timestamp_ok
  (0 when latency > max, |offset| > max, or out of order: such samples are excluded from training).
The Bollinger squeeze turn is a bar feature (`kestrel.features.bars`), usable on any bar interval.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import polars as pl

from kestrel.core.enums import Market
from kestrel.core.errors import ConfigurationError, DataError
from kestrel.core.events import (
    AggregateTrade,
    BookTicker,
    DepthSnapshot,
    DepthUpdate,
    FundingRate,
    Liquidation,
    MarketEvent,
    MarkPrice,
    OpenInterest,
    Trade,
)
from kestrel.features import micro_kernels as k
from kestrel.features.book_sync import BookChange, BookSynchronizer, ChangeKind


@dataclass(frozen=True, slots=True)
class MicroSpec:
    windows_ms: tuple[int, ...] = (50, 250, 1000, 60_000)
    liquidity_threshold_usdt: float = 50_000.0
    max_latency_ms: float = 500.0
    max_clock_offset_ms: float = 10_000.0
    book_capacity: int = 1000  # levels kept per side: features look at most 25 bps deep

    def __post_init__(self) -> None:
        if not 1 <= len(self.windows_ms) <= k.MAX_WINDOWS or min(self.windows_ms) <= 0:
            raise ConfigurationError(f"microstructure: 1 to {k.MAX_WINDOWS} positive windows (ms) are needed")
        if list(self.windows_ms) != sorted(self.windows_ms):
            raise ConfigurationError("microstructure: windows_ms must be in increasing order")

    @property
    def names(self) -> tuple[str, ...]:
        windowed = (
            "ofi",
            "dmid_bps",
            "trade_sign",
            "trade_rate",
            "vwap_distance_bps",
            "kyle_lambda",
            "cancel_new_ratio",
        )
        return (
            "spread_bps",
            "qi",
            "microprice_bps",
            "liq_score",
            *(f"{name}_{w}ms" for w in self.windows_ms for name in windowed),
            "micro_trend_bps",
            "rv_ratio",
            "queue_imbalance_5",
            "queue_imbalance_20",
            "depth_slope_bid",
            "depth_slope_ask",
            "near_touch_void",
            "funding_rate",
            "funding_delta",
            "mark_basis_bps",
            "oi_delta",
            "liquidation_rate",
            "latency_ms",
            "latency_z",
            "clock_offset_ms",
            "timestamp_ok",
        )

    def parameters(self) -> np.ndarray:
        p = np.zeros(k.P_SIZE)
        p[k.P_WINDOWS] = len(self.windows_ms)
        for index, window in enumerate(self.windows_ms):
            p[k.P_TAU + index] = window * 1e6
        p[k.P_LIQUIDITY] = self.liquidity_threshold_usdt
        p[k.P_MAX_LATENCY] = self.max_latency_ms
        p[k.P_MAX_OFFSET] = self.max_clock_offset_ms
        return p


class MicrostructureFeatures:
    """Streaming microstructure features of one symbol (one market)."""

    def __init__(self, spec: MicroSpec, market: Market) -> None:
        self.spec = spec
        self.names = spec.names
        self._p = spec.parameters()
        self._f, self._n, self._book = k.new_state(spec.book_capacity)
        self._o = np.full(k.output_size(len(spec.windows_ms)), math.nan)
        self.sync = BookSynchronizer(market)

    @property
    def values(self) -> np.ndarray:
        """The current features (reused array: copy to keep)."""
        return self._o

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.names, self._o.tolist(), strict=True))

    def on_event(self, event: MarketEvent) -> bool:
        """Fold one event in; False when it changed nothing (a diff buffered before the book synced,
        or an event type these features do not use)."""
        f, n, p, o = self._f, self._n, self._p, self._o
        if isinstance(event, BookTicker):
            k.on_top(
                f,
                n,
                p,
                o,
                event.ts_init,
                event.ts_event,
                event.bid_price,
                event.bid_qty,
                event.ask_price,
                event.ask_qty,
            )
        elif isinstance(event, Trade | AggregateTrade):
            k.on_trade(f, n, p, o, event.ts_init, event.ts_event, event.price, event.quantity, event.buyer_is_maker)
        elif isinstance(event, DepthUpdate):
            return self._apply(self.sync.on_update(event))
        elif isinstance(event, DepthSnapshot):
            return self._apply(self.sync.on_snapshot(event))
        elif isinstance(event, MarkPrice):
            k.on_mark(
                f,
                n,
                p,
                o,
                event.ts_init,
                event.ts_event,
                event.mark_price,
                event.index_price,
                event.funding_rate,
                event.next_funding_time_ns,
            )
        elif isinstance(event, OpenInterest):
            k.on_open_interest(f, n, p, o, event.ts_init, event.ts_event, event.open_interest)
        elif isinstance(event, Liquidation):
            k.on_liquidation(f, n, p, o, event.ts_init, event.ts_event, event.filled_quantity * event.average_price)
        elif isinstance(event, FundingRate):
            k.on_settled_funding(f, n, p, o, event.ts_init, event.ts_event, event.funding_rate)
        else:
            return False
        return True

    def _apply(self, changes: list[BookChange]) -> bool:
        for change in changes:
            k.on_book(
                self._f, self._n, self._p, self._o, self._book, change.ts_init, change.ts_event,
                change.kind is ChangeKind.RESET, change.bids, change.asks,
            )  # fmt: skip
        return bool(changes)


# ---- batch -----------------------------------------------------------------------------------------
_SCALARS = ("event_index", "ts_init", "ts_event", "kind", "a", "b", "c", "d", "e")
_SCHEMA = {
    "event_index": pl.Int64, "ts_init": pl.Int64, "ts_event": pl.Int64, "kind": pl.Int8,
    "a": pl.Float64, "b": pl.Float64, "c": pl.Float64, "d": pl.Float64, "e": pl.Int64,
}  # fmt: skip
_LEVELS = ("bid_price", "bid_qty", "ask_price", "ask_qty")
_NAN4 = (math.nan, math.nan, math.nan, math.nan)


class _TableBuilder:
    def __init__(self) -> None:
        self.scalars: dict[str, list[float | int]] = {name: [] for name in _SCALARS}
        self.levels: dict[str, list[list[float]]] = {name: [] for name in _LEVELS}

    def add(
        self, index: int, ts: tuple[int, int], kind: int, values: tuple[float, ...], e: int = 0,
        change: BookChange | None = None,
    ) -> None:  # fmt: skip
        for name, value in zip(_SCALARS, (index, ts[0], ts[1], kind, *values, e), strict=True):
            self.scalars[name].append(value)
        columns = (
            ([], [], [], [])
            if change is None
            else (
                change.bids[:, 0].tolist(),
                change.bids[:, 1].tolist(),
                change.asks[:, 0].tolist(),
                change.asks[:, 1].tolist(),
            )
        )
        for name, column in zip(_LEVELS, columns, strict=True):
            self.levels[name].append(column)

    def frame(self) -> pl.DataFrame:
        frame = pl.DataFrame(
            {name: pl.Series(name, values, dtype=_SCHEMA[name]) for name, values in self.scalars.items()}
        )
        return frame.with_columns(
            [pl.Series(name, values, dtype=pl.List(pl.Float64)) for name, values in self.levels.items()]
        )


def _scalar_row(event: MarketEvent) -> tuple[int, tuple[float, ...], int] | None:
    """(kind, a–d, e) of a non-book event; None for events these features do not use."""
    if isinstance(event, BookTicker):
        return k.KIND_TOP, (event.bid_price, event.bid_qty, event.ask_price, event.ask_qty), 0
    if isinstance(event, Trade | AggregateTrade):
        return k.KIND_TRADE, (event.price, event.quantity, float(event.buyer_is_maker), math.nan), 0
    if isinstance(event, MarkPrice):
        values = (event.mark_price, event.index_price, event.funding_rate, math.nan)
        return k.KIND_MARK, values, event.next_funding_time_ns
    if isinstance(event, OpenInterest):
        return k.KIND_OI, (event.open_interest, math.nan, math.nan, math.nan), 0
    if isinstance(event, Liquidation):
        return k.KIND_LIQ, (event.filled_quantity * event.average_price, math.nan, math.nan, math.nan), 0
    if isinstance(event, FundingRate):
        return k.KIND_FUNDING, (event.funding_rate, math.nan, math.nan, math.nan), 0
    return None


def events_table(events: Iterable[MarketEvent], market: Market) -> pl.DataFrame:
    """Events as a table (one row per handler call, in arrival order), ready for Parquet or DuckDB.

    Book events go through the same synchroniser as the streaming path, so a row is a book change
    (reset or diff) that was actually applied. `event_index` numbers the source events."""
    sync = BookSynchronizer(market)
    builder = _TableBuilder()
    for index, event in enumerate(events):
        if isinstance(event, DepthUpdate | DepthSnapshot):
            changes = sync.on_update(event) if isinstance(event, DepthUpdate) else sync.on_snapshot(event)
            for change in changes:
                builder.add(index, (change.ts_init, change.ts_event), int(change.kind), _NAN4, 0, change)
            continue
        row = _scalar_row(event)
        if row is not None:
            builder.add(index, (event.ts_init, event.ts_event), row[0], row[1], row[2])
    return builder.frame()


def _levels(table: pl.DataFrame, price: str, quantity: str) -> tuple[np.ndarray, np.ndarray]:
    lengths = table[price].list.len().fill_null(0).to_numpy().astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    prices = table[price].explode().drop_nulls().to_numpy()
    quantities = table[quantity].explode().drop_nulls().to_numpy()
    if prices.shape[0] != offsets[-1] or quantities.shape[0] != offsets[-1]:
        raise DataError("events table: price and quantity lists differ in length")
    return offsets, np.ascontiguousarray(np.column_stack([prices, quantities]), dtype=np.float64)


def compute_micro_features(table: pl.DataFrame, spec: MicroSpec, sample_every_ns: int = 0) -> pl.DataFrame:
    """Batch features over an events table (from `events_table`, Parquet or DuckDB), in row order.

    `sample_every_ns = 0` gives one row per table row (with its `event_index` and `row` number: one
    source event can make several rows, e.g. a snapshot and the diffs it releases); otherwise one row per
    grid time k·step strictly inside the data: the features after the last event received by then."""
    if sample_every_ns < 0:
        raise ConfigurationError("sample_every_ns must be >= 0")
    if table.height == 0:
        return pl.DataFrame({"ts": [], **{name: [] for name in spec.names}})
    ts_init = table["ts_init"].cast(pl.Int64).to_numpy()
    if np.any(np.diff(ts_init) < 0):
        raise DataError("events table: rows must be in arrival (ts_init) order")
    bid_offsets, bids = _levels(table, "bid_price", "bid_qty")
    ask_offsets, asks = _levels(table, "ask_price", "ask_qty")
    f, n, book = k.new_state(spec.book_capacity)
    o = np.full(k.output_size(len(spec.windows_ms)), math.nan)
    span = int(ts_init[-1] - ts_init[0])
    capacity = table.height if sample_every_ns == 0 else span // sample_every_ns + 1
    out = np.empty((capacity, o.shape[0]))
    out_ts = np.empty(capacity, dtype=np.int64)
    a, b, c, d = (np.ascontiguousarray(table[name].cast(pl.Float64).to_numpy()) for name in ("a", "b", "c", "d"))
    rows = k.run_table(
        f, n, spec.parameters(), o, book,
        table["kind"].cast(pl.Int64).to_numpy(), ts_init, table["ts_event"].cast(pl.Int64).to_numpy(),
        a, b, c, d, table["e"].cast(pl.Int64).to_numpy(), bid_offsets, bids, ask_offsets, asks,
        sample_every_ns, out, out_ts,
    )  # fmt: skip
    result = pl.DataFrame({"ts": out_ts[:rows], **{name: out[:rows, i] for i, name in enumerate(spec.names)}})
    if sample_every_ns == 0:
        result = result.with_columns(
            table["event_index"].alias("event_index"), pl.Series("row", np.arange(rows, dtype=np.int64))
        )
    return result


def micro_spec_from_config(feature: object) -> MicroSpec:
    """The microstructure spec of a `FeatureConfig` (config.feature)."""
    from kestrel.config.models import FeatureConfig

    if not isinstance(feature, FeatureConfig):
        raise ConfigurationError("micro_spec_from_config needs config.feature")
    return MicroSpec(
        windows_ms=tuple(feature.windows_ms),
        liquidity_threshold_usdt=feature.liquidity_threshold_usdt,
        max_latency_ms=feature.max_latency_ms,
        max_clock_offset_ms=feature.max_clock_offset_ms,
    )
