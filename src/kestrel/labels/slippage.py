"""Slippage fitted from replayed trades (R-LB-2): every taker order of a recording against the quotes
and the order-flow state just before it, then quantile regressions at 2.5 / 50 / 97.5 %.

A taker order is a run of consecutive trades with the same exchange time and aggressor side (one
market order walking the book prints several trades at one matching time). Its slippage is
side · (VWAP − mid before the order) / mid in bps: the half spread plus the walk; negative values
(price improvement, or a quote already moved by the same order) are kept — they are real outcomes.
Drivers: participation = order notional / top-of-book notional on the side it takes, and impact =
Kyle's λ (from the microstructure features, slowest window) × notional.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import polars as pl

from kestrel.core.enums import Market
from kestrel.core.events import AggregateTrade, BookTicker, MarketEvent, Trade
from kestrel.features.micro import MicroSpec, MicrostructureFeatures
from kestrel.labels.costs import SlippageModel


def taker_orders(events: Iterable[MarketEvent], market: Market, spec: MicroSpec | None = None) -> pl.DataFrame:
    """One row per taker order: ts, side (+1 buy / −1 sell), notional, slippage_bps, participation,
    impact_bps, depth_usdt, kyle_lambda."""
    spec = spec or MicroSpec()
    engine = MicrostructureFeatures(spec, market)
    lambda_index = spec.names.index(f"kyle_lambda_{spec.windows_ms[-1]}ms")
    rows: list[tuple[int, float, float, float, float, float]] = []
    quote: BookTicker | None = None
    current: list[Trade | AggregateTrade] = []
    state: tuple[float, float, float] = (math.nan, math.nan, math.nan)  # mid, depth taken, λ before the order

    def close() -> None:
        if not current:
            return
        side = -1.0 if current[0].buyer_is_maker else 1.0
        quantity = sum(trade.quantity for trade in current)
        notional = sum(trade.price * trade.quantity for trade in current)
        mid, depth, kyle = state
        if quantity > 0 and mid > 0 and depth > 0:
            vwap = notional / quantity
            rows.append((current[0].ts_init, side, notional, side * (vwap - mid) / mid * 1e4, depth, kyle))
        current.clear()

    for event in events:
        if isinstance(event, Trade | AggregateTrade):
            previous = current[0] if current else None
            same_order = (
                previous is not None
                and event.ts_event == previous.ts_event
                and event.buyer_is_maker == previous.buyer_is_maker
            )
            if not same_order:
                close()
                if quote is not None:
                    buy = not event.buyer_is_maker
                    depth = quote.ask_qty * quote.ask_price if buy else quote.bid_qty * quote.bid_price
                    state = (quote.mid, depth, float(engine.values[lambda_index]))
                else:
                    state = (math.nan, math.nan, math.nan)
            current.append(event)
        else:
            close()
            if isinstance(event, BookTicker):
                quote = event
        engine.on_event(event)
    close()
    frame = pl.DataFrame(
        rows, schema=["ts", "side", "notional", "slippage_bps", "depth_usdt", "kyle_lambda"], orient="row"
    )
    return frame.with_columns(
        (pl.col("notional") / pl.col("depth_usdt")).alias("participation"),
        (pl.col("kyle_lambda").fill_nan(0.0) * pl.col("notional") / 1e6).alias("impact_bps"),
    )


@dataclass(frozen=True, slots=True)
class SlippageFit:
    """A fitted model and the market it was fitted on: typical top-of-book depth and λ, used when a
    cost is needed without a live book (bar-level labels)."""

    model: SlippageModel
    typical_depth_usdt: float
    typical_kyle_lambda: float

    def to_dict(self) -> dict[str, object]:
        return {
            **self.model.to_dict(),
            "typical_depth_usdt": self.typical_depth_usdt,
            "typical_kyle_lambda": self.typical_kyle_lambda,
        }

    def per_side_bps(self, quantile: float, notional: float) -> float:
        return self.model.bps(quantile, notional / self.typical_depth_usdt, self.typical_kyle_lambda * notional / 1e6)


def fit_slippage(orders: pl.DataFrame, source: tuple[str, ...] = ()) -> SlippageFit:
    clean = orders.filter(pl.col("participation").is_finite() & pl.col("slippage_bps").is_finite())
    model = SlippageModel.fit(
        clean["slippage_bps"].to_numpy(),
        clean["participation"].to_numpy(),
        clean["impact_bps"].fill_nan(0.0).to_numpy(),
        source,
    )
    lambdas = clean["kyle_lambda"].fill_nan(None).drop_nulls().to_numpy()
    return SlippageFit(
        model,
        float(np.median(clean["depth_usdt"].to_numpy())),
        float(np.median(lambdas)) if lambdas.size else 0.0,
    )


def fit_from_recordings(paths: list[str]) -> SlippageFit:
    """Fit on raw recordings (hftbacktest or cryptofeed layouts; `shared:` paths allowed), each file
    replayed on its own, the taker orders pooled."""
    from kestrel.core.errors import DataError
    from kestrel.features.io import resolve_data_path
    from kestrel.features.raw_events import frames_to_events
    from kestrel.replay.raw import read_raw

    frames = []
    for path in paths:
        resolved = resolve_data_path(path)
        events = list(frames_to_events(read_raw(resolved)))
        markets = {event.market for event in events}
        if len(markets) != 1:
            raise DataError(f"{resolved}: slippage fitting needs one market per recording")
        frames.append(taker_orders(events, markets.pop()))
    return fit_slippage(pl.concat(frames), tuple(paths))
