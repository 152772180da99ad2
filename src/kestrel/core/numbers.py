"""Exact decimal conversion at the boundary.

Money and quantities cross the boundary as Decimal (or integer ticks), never as bare floats: a float
like 0.1 has no exact binary value, and `Decimal(0.1)` would carry that error into every order.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation

Number = Decimal | int | float | str


def to_decimal(value: Number, name: str = "value") -> Decimal:
    """Convert to Decimal without float artefacts; reject NaN and infinities.

    A float goes through its shortest round-trip repr, so 0.1 becomes Decimal('0.1').
    """
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool):
        raise TypeError(f"{name}: a bool is not a number")
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{name} is not a number: {value!r}") from None
    else:
        raise TypeError(f"{name}: unsupported type {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"{name} must be finite, got {value!r}")
    return result


def to_positive_decimal(value: Number, name: str = "value") -> Decimal:
    """As `to_decimal`, and the result must be strictly positive (prices, quantities)."""
    result = to_decimal(value, name)
    if result <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return result


def format_decimal(value: Decimal) -> str:
    """Plain (no exponent), no trailing zeros: the form Binance accepts in requests."""
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"
