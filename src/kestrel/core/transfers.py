"""Wallet transfers between the spot and the USD-M futures wallets of one account (R-EX-6).

Plain data shared by the exchange adapter, the simulator and the transfer manager: the direction uses
Binance's universal-transfer type names (`POST /sapi/v1/asset/transfer`), so the wire value is the enum
value.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum, unique

from kestrel.core.enums import Market


@unique
class TransferDirection(StrEnum):
    SPOT_TO_FUTURES = "MAIN_UMFUTURE"
    FUTURES_TO_SPOT = "UMFUTURE_MAIN"

    @property
    def source(self) -> Market:
        return Market.SPOT if self is TransferDirection.SPOT_TO_FUTURES else Market.FUTURES

    @property
    def target(self) -> Market:
        return Market.FUTURES if self is TransferDirection.SPOT_TO_FUTURES else Market.SPOT

    @classmethod
    def into(cls, target: Market) -> TransferDirection:
        return cls.SPOT_TO_FUTURES if target is Market.FUTURES else cls.FUTURES_TO_SPOT


@unique
class TransferStatus(StrEnum):
    PENDING = "PENDING"  # written before the request leaves; a restart finds it and asks the exchange
    CONFIRMED = "CONFIRMED"
    FAILED = "FAILED"  # refused, or not found on the exchange after an unknown outcome


@dataclass(frozen=True, slots=True)
class TransferResult:
    """The exchange's answer to one transfer."""

    direction: TransferDirection
    asset: str
    amount: Decimal
    status: TransferStatus
    exchange_id: int | None  # Binance `tranId`
    ts_event: int
    reason: str | None = None  # why it failed (the exchange's message), None when confirmed
