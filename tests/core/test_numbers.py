from __future__ import annotations

from decimal import Decimal

import pytest

from kestrel.core.numbers import format_decimal, to_decimal, to_positive_decimal


def test_conversions() -> None:
    assert to_decimal(0.1) == Decimal("0.1")
    assert to_decimal("  1.50 ") == Decimal("1.50")
    assert format_decimal(Decimal("1.500")) == "1.5"
    assert format_decimal(Decimal("1E+2")) == "100"
    assert format_decimal(Decimal("-0")) == "0"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "NaN", "x", True])
def test_rejects(bad: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        to_decimal(bad)  # type: ignore[arg-type]


def test_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        to_positive_decimal("0")
