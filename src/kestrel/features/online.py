"""The kline models' feature rows computed online, bar by bar, equal to the research table's rows.

A model trained by `kestrel train` sees, per symbol and bar, the bar features, the return correlation
with the partner asset, the funding features and the rolling normalisation of `model_feature_table`.
`OnlineKlineFeatures` produces the same row at each bar close from closed klines and settled funding
rates as they arrive (backtest or live), with the same compiled code: a bar time is emitted once every
symbol's bar for it is in (the correlation pairs bars of the same open time, as the batch join does).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kestrel.core.errors import DataError
from kestrel.core.events import FundingRate, Kline
from kestrel.features.bars import BarFeatures, BarSpec
from kestrel.features.cross import PairCorrelation
from kestrel.features.normalise import Method, RollingNormaliser
from kestrel.features.table import CORRELATION_PREFIX, NOT_NORMALISED_PREFIXES, model_feature_names


@dataclass
class _SymbolState:
    bars: BarFeatures
    normaliser: RollingNormaliser
    correlation: PairCorrelation | None
    previous_close: float = math.nan
    funding_times: list[int] = field(default_factory=list)
    funding_rates: list[float] = field(default_factory=list)


class OnlineKlineFeatures:
    """Model rows for several symbols; the first symbol is the correlation reference (as in training)."""

    def __init__(
        self,
        symbols: list[str],
        spec: BarSpec,
        correlation_window: int,
        normalisation: Method,
        normalisation_window: int,
        with_funding: bool,
    ) -> None:
        if not symbols or len(set(symbols)) != len(symbols):
            raise DataError("online features: give one or more distinct symbols")
        self.symbols = list(symbols)
        self.spec = spec
        self.with_funding = with_funding
        self.names = model_feature_names(spec, correlation_window if len(symbols) > 1 else None, with_funding)
        self._normalised = [i for i, name in enumerate(self.names) if not name.startswith(NOT_NORMALISED_PREFIXES)]
        self._bar_index = {name: i for i, name in enumerate(spec.names)}
        self._states = {
            symbol: _SymbolState(
                BarFeatures(spec),
                RollingNormaliser(len(self._normalised), normalisation_window, normalisation),
                PairCorrelation(correlation_window) if len(symbols) > 1 else None,
            )
            for symbol in symbols
        }
        self._pending: dict[int, dict[str, tuple[np.ndarray, float]]] = {}

    @classmethod
    def from_card(cls, card: dict[str, Any]) -> OnlineKlineFeatures:
        """The feature pipeline a registry model card describes (`feature_pipeline`, `feature_names`),
        so a consumer computes exactly the rows the served model was trained on."""
        pipeline = card.get("feature_pipeline")
        if not isinstance(pipeline, dict) or pipeline.get("kind") != "bars":
            raise DataError("model card: no bar feature pipeline")
        bars = pipeline["bars"]
        spec = BarSpec(
            interval_s=int(pipeline["interval_s"]),
            atr_period=int(pipeline["atr_period"]),
            return_windows=tuple(bars["return_windows"]),
            rv_windows=tuple(bars["rv_windows"]),
            rv_percentile_lookback=int(bars["rv_percentile_lookback"]),
            bollinger_period=int(bars["bollinger_period"]),
            bollinger_k=float(bars["bollinger_k"]),
            squeeze_lookback=int(bars["squeeze_lookback"]),
            trend_ema_period=int(bars["trend_ema_period"]),
        )
        names = list(card.get("feature_names", []))
        online = cls(
            list(pipeline["symbols"]),
            spec,
            int(bars["correlation_window"]),
            pipeline["normalisation"],
            int(pipeline["normalisation_window"]),
            with_funding="funding_rate" in names,
        )
        if online.names != names:
            raise DataError("model card: its feature names differ from the pipeline it describes")
        return online

    def on_funding(self, event: FundingRate) -> None:
        state = self._state(event.symbol)
        if state.funding_times and event.ts_event < state.funding_times[-1]:
            raise DataError(f"{event.symbol}: funding rates must arrive in time order")
        state.funding_times.append(event.ts_event)
        state.funding_rates.append(event.funding_rate)

    def on_kline(self, kline: Kline) -> dict[str, np.ndarray]:
        """Fold a kline in (unclosed klines are ignored); returns the rows completed by it, by symbol —
        empty until every symbol's bar of that open time has closed."""
        if not kline.is_closed:
            return {}
        state = self._state(kline.symbol)
        raw = state.bars.update(kline.high, kline.low, kline.close, kline.volume).copy()
        one_bar = math.log(kline.close / state.previous_close) if state.previous_close > 0 else math.nan
        state.previous_close = kline.close
        bucket = self._pending.setdefault(kline.open_time_ns, {})
        bucket[kline.symbol] = (raw, one_bar)
        if len(bucket) < len(self.symbols):
            return {}
        del self._pending[kline.open_time_ns]
        close_ns = kline.open_time_ns + self.spec.interval_s * 1_000_000_000
        return {symbol: self._row(symbol, bucket, close_ns) for symbol in self.symbols}

    def _state(self, symbol: str) -> _SymbolState:
        state = self._states.get(symbol)
        if state is None:
            raise DataError(f"online features: unknown symbol {symbol!r} (known: {', '.join(self.symbols)})")
        return state

    def _row(self, symbol: str, bucket: dict[str, tuple[np.ndarray, float]], close_ns: int) -> np.ndarray:
        state = self._states[symbol]
        raw, own_return = bucket[symbol]
        row = np.full(len(self.names), math.nan)
        for i, name in enumerate(self.names):
            if name in self._bar_index:
                row[i] = raw[self._bar_index[name]]
        if state.correlation is not None:
            partner = self.symbols[1] if symbol == self.symbols[0] else self.symbols[0]
            value = state.correlation.update(own_return, bucket[partner][1])
            row[self.names.index(next(n for n in self.names if n.startswith(CORRELATION_PREFIX)))] = value
        if self.with_funding:
            # the last two rates settled strictly before the bar close, as the batch table uses
            known = bisect.bisect_left(state.funding_times, close_ns)
            rate = state.funding_rates[known - 1] if known >= 1 else math.nan
            previous = state.funding_rates[known - 2] if known >= 2 else math.nan
            row[self.names.index("funding_rate")] = rate
            row[self.names.index("funding_delta")] = rate - previous
        row[self._normalised] = state.normaliser.update(row[self._normalised])
        return row
