"""The money arithmetic of fills, funding and margin, written once for two number types.

Each function is plain arithmetic on its arguments, so the same source runs on `Decimal` in the
event-driven engine (exact money, what we book) and, compiled by numba on float64, in the bar fast path
(`kestrel.backtest.fastpath`), whose parameter sweeps need millions of bars per second. Keeping one
source is what makes the two paths agree: the fast path differs only by float rounding, which the
parity tests bound.

Conventions: quantities of positions are signed (> 0 long); `side` is +1 buy / −1 sell.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from numba import njit

N = TypeVar("N", bound=Any)  # Decimal or float


def fee(notional: N, rate: N) -> N:
    """Commission of one fill: notional × rate (Binance charges maker/taker on the traded value)."""
    return notional * rate  # type: ignore[no-any-return]


def funding_payment(position_quantity: N, mark_price: N, rate: N) -> N:
    """What a position receives at a funding settlement (negative: pays). Longs pay a positive rate."""
    return -(position_quantity * mark_price * rate)  # type: ignore[no-any-return]


def closing_quantity(position_quantity: N, signed_fill: N) -> N:
    """The part of a signed fill that reduces the position (0 when it adds to it)."""
    if position_quantity > 0 and signed_fill < 0:
        return min(position_quantity, -signed_fill)  # type: ignore[no-any-return]
    if position_quantity < 0 and signed_fill > 0:
        return min(-position_quantity, signed_fill)  # type: ignore[no-any-return]
    return position_quantity * 0  # type: ignore[no-any-return]


def realized_pnl(position_quantity: N, entry_price: N, price: N, closed: N) -> N:
    """Price PnL realised by closing `closed` (> 0) of a position entered at `entry_price`."""
    if position_quantity > 0:
        return (price - entry_price) * closed  # type: ignore[no-any-return]
    return (entry_price - price) * closed  # type: ignore[no-any-return]


def next_entry_price(position_quantity: N, entry_price: N, price: N, signed_fill: N) -> N:
    """Average entry price after a fill: volume-weighted when adding, unchanged when reducing, the fill
    price when the fill opens or reverses the position, zero when flat."""
    after = position_quantity + signed_fill
    if after == 0:
        return after  # type: ignore[no-any-return]
    if position_quantity == 0 or (position_quantity > 0) != (after > 0):
        return price
    if (position_quantity > 0) == (signed_fill > 0):
        return (entry_price * abs(position_quantity) + price * abs(signed_fill)) / abs(after)  # type: ignore[no-any-return]
    return entry_price


def maintenance_margin(notional: N, floors: Any, ratios: Any, cums: Any) -> N:
    """Maintenance margin of a position of absolute `notional`: notional × ratio − cum of the bracket
    whose floor is the largest not above the notional (Binance leverage brackets)."""
    index = 0
    for candidate in range(len(floors)):
        if notional >= floors[candidate]:
            index = candidate
    return notional * ratios[index] - cums[index]  # type: ignore[no-any-return]


def liquidation_price(
    wallet: N, other_maintenance: N, other_unrealized: N, quantity: N, entry_price: N, ratio: N, cum: N
) -> N:
    """Binance's one-way liquidation price: where margin balance equals maintenance margin.

    LP = (WB − TMM₁ + UPNL₁ + cum − side·|Q|·EP) / (|Q|·MMR − side·|Q|), with WB the wallet backing the
    position (cross wallet or isolated margin) and TMM₁ / UPNL₁ the other cross positions' maintenance
    margin and unrealised PnL. Returns 0 when the position cannot be liquidated (e.g. a fully
    collateralised long) or is flat.
    """
    size = abs(quantity)
    if size == 0:
        return size  # type: ignore[no-any-return]
    side = quantity / size
    denominator = size * ratio - side * size
    if denominator == 0:
        return denominator  # type: ignore[no-any-return]
    price = (wallet - other_maintenance + other_unrealized + cum - side * size * entry_price) / denominator
    if price < 0:
        return price * 0  # type: ignore[no-any-return]
    return price  # type: ignore[no-any-return]


# float64 versions for compiled loops (same source as above)
fee_compiled: Callable[..., Any] = njit(cache=True)(fee)
funding_payment_compiled: Callable[..., Any] = njit(cache=True)(funding_payment)
closing_quantity_compiled: Callable[..., Any] = njit(cache=True)(closing_quantity)
realized_pnl_compiled: Callable[..., Any] = njit(cache=True)(realized_pnl)
next_entry_price_compiled: Callable[..., Any] = njit(cache=True)(next_entry_price)
maintenance_margin_compiled: Callable[..., Any] = njit(cache=True)(maintenance_margin)
liquidation_price_compiled: Callable[..., Any] = njit(cache=True)(liquidation_price)
