"""Position sizing with exchange rounding: futures (R-SE-4) and spot with OCO brackets (R-SE-5).

Futures: margin = base × size_mult; notional = margin × leverage; qty = notional / price rounded down
to the step; stop distance d = min(ATR_mult × ATR × sl_mult, max_loss_usdt / qty); SL = entry ∓ d;
TP is the nearest price whose net PnL (after taker fees on both legs) is at least take_profit_margin_pct
of the margin, its distance then scaled by the rules' tp_mult. The stop is rounded toward the entry
(the loss never exceeds the limit) and the take-profit away from it (the target is never missed).
Spot: the same with notional = base × size_mult and no leverage; the brackets form an OCO sell
(TP above / SL below the average cost of a buy).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from kestrel.config.models import StrategyConfig
from kestrel.core.enums import Market, Side
from kestrel.core.errors import InvalidOrderError
from kestrel.core.instrument import Instrument, Rounding
from kestrel.core.numbers import Number, to_decimal

_ONE = Decimal(1)
_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class SizedEntry:
    side: Side
    quantity: Decimal
    entry_price: Decimal
    margin: Decimal
    notional: Decimal
    stop_price: Decimal
    take_profit_price: Decimal
    loss_at_stop: Decimal  # quantity × |entry − stop|, before fees
    net_at_take_profit: Decimal  # after taker fees on both legs


def size_entry(
    instrument: Instrument,
    side: Side,
    entry_price: Number,
    atr: Number,
    size_multiplier: float,
    base_margin_usdt: Number,
    leverage: int,
    config: StrategyConfig,
    tp_multiplier: float = 1.0,
    sl_multiplier: float = 1.0,
) -> SizedEntry:
    """Size one entry. Raises InvalidOrderError when the result breaks an exchange filter."""
    if size_multiplier <= 0:
        raise ValueError("size multiplier must be positive (0 means skip, decided before sizing)")
    spot = instrument.market is Market.SPOT
    if leverage < 1 or (spot and leverage != 1):
        raise ValueError("leverage must be ≥ 1 (and exactly 1 on spot)")
    entry = instrument.round_price(entry_price)
    margin = to_decimal(base_margin_usdt, "base_margin_usdt") * to_decimal(size_multiplier, "size_multiplier")
    notional_budget = margin * leverage
    quantity = instrument.quantity_for_notional(notional_budget, entry)
    notional = quantity * entry
    margin_used = notional / leverage

    atr_value = to_decimal(atr, "atr")
    if atr_value <= 0:
        raise ValueError("ATR must be positive")
    distance = min(
        to_decimal(config.atr_stop_multiplier, "atr_stop_multiplier") * atr_value * to_decimal(sl_multiplier, "sl"),
        to_decimal(config.max_loss_usdt, "max_loss_usdt") / quantity,
    )
    sign = side.sign
    stop = instrument.round_price(entry - sign * distance, Rounding.UP if sign > 0 else Rounding.DOWN)
    if (stop >= entry) if sign > 0 else (stop <= entry):
        raise InvalidOrderError(f"{instrument.symbol}: stop distance {distance} is below one tick")

    fee = to_decimal(config.taker_fee_rate, "taker_fee_rate")
    target = to_decimal(config.take_profit_margin_pct, "take_profit_margin_pct") / _HUNDRED * margin_used
    if sign > 0:
        minimum_tp = (target / quantity + entry * (_ONE + fee)) / (_ONE - fee)
    else:
        minimum_tp = (entry * (_ONE - fee) - target / quantity) / (_ONE + fee)
    tp_distance = abs(minimum_tp - entry) * to_decimal(tp_multiplier, "tp_multiplier")
    take_profit = instrument.round_price(entry + sign * tp_distance, Rounding.UP if sign > 0 else Rounding.DOWN)
    net = sign * (take_profit - entry) * quantity - fee * (entry + take_profit) * quantity
    return SizedEntry(
        side, quantity, entry, margin_used, notional, stop, take_profit, abs(entry - stop) * quantity, net
    )
