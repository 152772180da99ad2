"""USDⓈ-M leverage brackets: maximum leverage and maintenance margin by position notional.

A bracket table is what `GET /fapi/v1/leverageBracket` returns per symbol. Binance's own tables can be
loaded from a JSON file in that format (`matching.leverage_brackets_file`); without one, BTCUSDT and
ETHUSDT use the tables Binance published for them (2024) and every other symbol a conservative generic
table. `cum` (the maintenance amount) is derived so that maintenance margin is continuous across
brackets, as Binance defines it: cum_i = cum_{i−1} + floor_i × (ratio_i − ratio_{i−1}).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from kestrel.core.errors import ConfigurationError, DataError
from kestrel.matching import formulas


@dataclass(frozen=True, slots=True)
class LeverageBracket:
    bracket: int
    initial_leverage: int
    notional_floor: Decimal
    notional_cap: Decimal
    maint_margin_ratio: Decimal
    cum: Decimal


class BracketTable:
    """The brackets of one symbol, sorted by floor."""

    def __init__(self, brackets: Sequence[LeverageBracket]) -> None:
        if not brackets:
            raise DataError("a leverage bracket table needs at least one bracket")
        self.brackets = tuple(sorted(brackets, key=lambda b: b.notional_floor))
        if self.brackets[0].notional_floor != 0:
            raise DataError("the first leverage bracket must start at notional 0")
        self._floors = [b.notional_floor for b in self.brackets]
        self._ratios = [b.maint_margin_ratio for b in self.brackets]
        self._cums = [b.cum for b in self.brackets]

    @property
    def max_leverage(self) -> int:
        return self.brackets[0].initial_leverage

    def bracket_for(self, notional: Decimal) -> LeverageBracket:
        chosen = self.brackets[0]
        for bracket in self.brackets:
            if abs(notional) >= bracket.notional_floor:
                chosen = bracket
        return chosen

    def maintenance_margin(self, notional: Decimal) -> Decimal:
        return formulas.maintenance_margin(abs(notional), self._floors, self._ratios, self._cums)

    def max_notional(self, leverage: int) -> Decimal:
        """The largest position notional allowed at `leverage` (-2027 beyond it)."""
        allowed = [b.notional_cap for b in self.brackets if b.initial_leverage >= leverage]
        return max(allowed) if allowed else Decimal(0)

    def as_arrays(self) -> tuple[list[float], list[float], list[float]]:
        """Floors, ratios and cums as floats, for the compiled fast path."""
        return [float(v) for v in self._floors], [float(v) for v in self._ratios], [float(v) for v in self._cums]


def build_table(rows: Sequence[tuple[str, str, int, str]]) -> BracketTable:
    """Brackets from (floor, cap, max leverage, maintenance ratio) rows, deriving `cum`."""
    brackets: list[LeverageBracket] = []
    cum = Decimal(0)
    previous_ratio = Decimal(0)
    for number, (floor, cap, leverage, ratio) in enumerate(rows, 1):
        floor_value, ratio_value = Decimal(floor), Decimal(ratio)
        cum += floor_value * (ratio_value - previous_ratio)
        previous_ratio = ratio_value
        brackets.append(LeverageBracket(number, leverage, floor_value, Decimal(cap), ratio_value, cum))
    return BracketTable(brackets)


BTCUSDT_BRACKETS = build_table(
    [
        ("0", "50000", 125, "0.004"),
        ("50000", "600000", 100, "0.005"),
        ("600000", "3000000", 75, "0.0065"),
        ("3000000", "12000000", 50, "0.01"),
        ("12000000", "70000000", 25, "0.02"),
        ("70000000", "100000000", 20, "0.025"),
        ("100000000", "230000000", 10, "0.05"),
        ("230000000", "480000000", 5, "0.1"),
        ("480000000", "600000000", 4, "0.125"),
        ("600000000", "800000000", 3, "0.15"),
        ("800000000", "1200000000", 2, "0.25"),
        ("1200000000", "1800000000", 1, "0.5"),
    ]
)
ETHUSDT_BRACKETS = build_table(
    [
        ("0", "50000", 125, "0.004"),
        ("50000", "600000", 100, "0.005"),
        ("600000", "3000000", 75, "0.0065"),
        ("3000000", "12000000", 50, "0.01"),
        ("12000000", "50000000", 25, "0.02"),
        ("50000000", "65000000", 20, "0.025"),
        ("65000000", "150000000", 10, "0.05"),
        ("150000000", "320000000", 5, "0.1"),
        ("320000000", "400000000", 4, "0.125"),
        ("400000000", "530000000", 3, "0.15"),
        ("530000000", "800000000", 2, "0.25"),
        ("800000000", "1200000000", 1, "0.5"),
    ]
)
GENERIC_BRACKETS = build_table(
    [
        ("0", "5000", 50, "0.01"),
        ("5000", "25000", 25, "0.025"),
        ("25000", "100000", 20, "0.05"),
        ("100000", "250000", 10, "0.1"),
        ("250000", "1000000", 5, "0.125"),
        ("1000000", "3000000", 4, "0.15"),
        ("3000000", "5000000", 2, "0.25"),
        ("5000000", "10000000", 1, "0.5"),
    ]
)
DEFAULT_TABLES: Mapping[str, BracketTable] = {"BTCUSDT": BTCUSDT_BRACKETS, "ETHUSDT": ETHUSDT_BRACKETS}


class BracketRegistry:
    """Bracket tables per symbol: loaded ones first, then the built-in defaults."""

    def __init__(self, tables: Mapping[str, BracketTable] | None = None) -> None:
        self._tables = dict(DEFAULT_TABLES)
        self._tables.update(tables or {})

    def table(self, symbol: str) -> BracketTable:
        return self._tables.get(symbol, GENERIC_BRACKETS)

    @classmethod
    def from_file(cls, path: Path) -> BracketRegistry:
        """Read a `GET /fapi/v1/leverageBracket` response saved as JSON."""
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigurationError(f"{path}: leverage bracket file not found") from None
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"{path}: not a leverage bracket JSON file ({exc})") from None
        if not isinstance(payload, list):
            raise ConfigurationError(f"{path}: expected a list of {{symbol, brackets}} objects")
        tables: dict[str, BracketTable] = {}
        try:
            for entry in payload:
                brackets = [
                    LeverageBracket(
                        int(row["bracket"]),
                        int(row["initialLeverage"]),
                        Decimal(str(row["notionalFloor"])),
                        Decimal(str(row["notionalCap"])),
                        Decimal(str(row["maintMarginRatio"])),
                        Decimal(str(row["cum"])),
                    )
                    for row in entry["brackets"]
                ]
                tables[str(entry["symbol"])] = BracketTable(brackets)
        except (KeyError, TypeError, ArithmeticError, DataError) as exc:
            raise ConfigurationError(f"{path}: malformed leverage bracket entry ({exc})") from None
        return cls(tables)
