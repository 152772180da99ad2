"""Maker / taker commission by VIP tier, exact: fee = notional × rate (Decimal).

The tier tables are Binance's published regular-user schedule (spot: USDT pairs without BNB discount;
USDⓈ-M futures: USDT-margined), VIP 0–9, as percentages. Schedules change; a run can override the rates
(`matching.fee_overrides`), and the rates used are written into every run's parameter snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from kestrel.core.enums import LiquiditySide, Market
from kestrel.core.errors import ConfigurationError
from kestrel.matching import formulas

_PERCENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class FeeRates:
    """Commission rates as fractions (0.001 = 0.1 %)."""

    maker: Decimal
    taker: Decimal

    def rate(self, liquidity: LiquiditySide) -> Decimal:
        return self.maker if liquidity is LiquiditySide.MAKER else self.taker


def _tiers(rows: list[tuple[str, str]]) -> tuple[FeeRates, ...]:
    return tuple(FeeRates(Decimal(maker) * _PERCENT, Decimal(taker) * _PERCENT) for maker, taker in rows)


SPOT_TIERS = _tiers(
    [
        ("0.1000", "0.1000"),
        ("0.0900", "0.1000"),
        ("0.0800", "0.1000"),
        ("0.0420", "0.0600"),
        ("0.0420", "0.0540"),
        ("0.0360", "0.0480"),
        ("0.0300", "0.0420"),
        ("0.0240", "0.0360"),
        ("0.0180", "0.0300"),
        ("0.0120", "0.0240"),
    ]
)
FUTURES_TIERS = _tiers(
    [
        ("0.0200", "0.0500"),
        ("0.0160", "0.0400"),
        ("0.0140", "0.0350"),
        ("0.0120", "0.0320"),
        ("0.0100", "0.0300"),
        ("0.0080", "0.0270"),
        ("0.0060", "0.0250"),
        ("0.0040", "0.0220"),
        ("0.0020", "0.0200"),
        ("0.0000", "0.0170"),
    ]
)


class FeeSchedule:
    """The commission rates of one account per market."""

    def __init__(
        self,
        spot_tier: int = 0,
        futures_tier: int = 0,
        overrides: Mapping[Market, FeeRates] | None = None,
    ) -> None:
        for name, tier in (("spot", spot_tier), ("futures", futures_tier)):
            if not 0 <= tier <= 9:
                raise ConfigurationError(f"{name} fee tier must be within VIP 0..9, got {tier}")
        self._rates = {Market.SPOT: SPOT_TIERS[spot_tier], Market.FUTURES: FUTURES_TIERS[futures_tier]}
        for market, rates in (overrides or {}).items():
            if rates.maker < -1 or rates.taker < 0 or rates.maker > 1 or rates.taker > 1:
                raise ConfigurationError(f"{market.value} fee override out of range: {rates}")
            self._rates[market] = rates
        self.spot_tier = spot_tier
        self.futures_tier = futures_tier

    def rates(self, market: Market) -> FeeRates:
        return self._rates[market]

    def rate(self, market: Market, liquidity: LiquiditySide) -> Decimal:
        return self._rates[market].rate(liquidity)

    def fee(self, market: Market, liquidity: LiquiditySide, notional: Decimal) -> Decimal:
        """Exactly notional × rate."""
        return formulas.fee(notional, self.rate(market, liquidity))

    def describe(self) -> dict[str, dict[str, str]]:
        return {market.value: {"maker": str(r.maker), "taker": str(r.taker)} for market, r in self._rates.items()}
