"""Route planning (R-EX-1, R-EX-7): how an intent's quantity goes to the exchange.

The routing table picks, by notional bucket, how long a maker (post-only) order may rest and how many
TWAP slices to send at what interval; slice intervals get seeded jitter. The liquidity probe delays or
splits when the spread is unusually wide (> factor × its 1 h mean). Degradation overrides: a poor maker
fill ratio sends market orders, slow routing sends one taker order, balance trouble halves the size.
Each maker slice that is not filled within its wait falls back to taker for the remainder when the
intent's fill ratio is below θ. The plan is data; the executor (node) carries it out through the Venue.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from kestrel.config.models import ExecutionConfig, RoutingBucket
from kestrel.core.enums import OrderType
from kestrel.core.errors import InvalidOrderError
from kestrel.core.instrument import Instrument, Rounding
from kestrel.execution.quality import Degradation


class Style(StrEnum):
    MAKER = "maker"  # post-only limit at the near touch, then taker fallback for the remainder
    TAKER = "taker"  # market order


@dataclass(frozen=True, slots=True)
class Slice:
    index: int
    quantity: Decimal
    delay_ms: int  # after the plan starts
    style: Style
    maker_wait_ms: int


@dataclass(frozen=True, slots=True)
class RoutePlan:
    bucket: RoutingBucket
    slices: tuple[Slice, ...]
    start_delay_ms: int  # liquidity probe wait before the first slice
    notes: tuple[str, ...]

    @property
    def quantity(self) -> Decimal:
        return sum((s.quantity for s in self.slices), Decimal(0))


def bucket_for(notional_usdt: float, table: list[RoutingBucket]) -> RoutingBucket:
    chosen = table[0]
    for bucket in table:
        if notional_usdt >= bucket.min_notional_usdt:
            chosen = bucket
    return chosen


def plan_route(
    instrument: Instrument,
    quantity: Decimal,
    price: Decimal,
    config: ExecutionConfig,
    rng: random.Random,
    degradation: Degradation | None = None,
    spread_bps: float | None = None,
    mean_spread_bps_1h: float | None = None,
) -> RoutePlan:
    """Plan the slices of one entry. Quantities stay on the step grid and sum exactly to `quantity`
    (when a split would leave a slice below the exchange minimum, fewer slices are used)."""
    notional = float(quantity * price)
    bucket = bucket_for(notional, config.routing)
    notes: list[str] = []
    slices_wanted = bucket.slices
    style = Style.MAKER
    start_delay = 0
    if degradation is not None and degradation.reduce_size:
        quantity = instrument.round_quantity(quantity / 2, rounding=Rounding.DOWN)
        notes.append("size halved: " + "; ".join(degradation.reasons))
    if degradation is not None and degradation.no_twap_or_maker:
        slices_wanted, style = 1, Style.TAKER
        notes.append("single taker order: routing too slow")
    elif degradation is not None and degradation.market_only:
        style = Style.TAKER
        notes.append("taker only: maker fill ratio too low")
    wide = (
        spread_bps is not None
        and mean_spread_bps_1h is not None
        and mean_spread_bps_1h > 0
        and spread_bps > config.liquidity_probe_factor * mean_spread_bps_1h
    )
    if wide:
        start_delay = config.liquidity_probe_wait_ms
        slices_wanted = max(slices_wanted, 2) if style is Style.MAKER else slices_wanted
        notes.append(f"liquidity probe: spread {spread_bps:.2f} > {config.liquidity_probe_factor:g} × mean")
    quantities = _split(instrument, quantity, price, slices_wanted)
    if len(quantities) < slices_wanted:
        notes.append(f"{len(quantities)} slice(s): smaller slices would break the exchange minimums")
    slices = []
    delay = start_delay
    for index, part in enumerate(quantities):
        slices.append(Slice(index, part, delay, style, bucket.maker_wait_ms if style is Style.MAKER else 0))
        jitter = 1.0 + rng.uniform(-1.0, 1.0) * config.twap_jitter_pct / 100.0
        delay += round(bucket.slice_interval_ms * jitter)
    return RoutePlan(bucket, tuple(slices), start_delay, tuple(notes))


def _split(instrument: Instrument, quantity: Decimal, price: Decimal, parts: int) -> list[Decimal]:
    step = instrument.step_size
    for count in range(parts, 0, -1):
        base = (quantity / count // step) * step if step > 0 else quantity / count
        if base <= 0:
            continue
        pieces = [base] * (count - 1) + [quantity - base * (count - 1)]
        if all(_valid(instrument, price, piece) for piece in pieces):
            return pieces
    return [quantity]


def _valid(instrument: Instrument, price: Decimal, quantity: Decimal) -> bool:
    try:
        instrument.validate(price, quantity, OrderType.LIMIT)
    except InvalidOrderError:
        return False  # a filter failure means: try fewer slices
    return True


def needs_taker_fallback(filled: Decimal, requested: Decimal, theta: float) -> bool:
    """After a maker wait: fall back to taker for the rest when the fill ratio is below θ."""
    if requested <= 0:
        return False
    return float(filled / requested) < theta and filled < requested
