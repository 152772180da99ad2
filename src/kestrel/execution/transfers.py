"""Wallet transfers spot ↔ USD-M futures when one side runs short (R-EX-6), with caps.

`TransferManager.top_up(target, asset, shortfall)` moves what is missing from the other wallet, within:
- `execution.transfer_max_usdt` per transfer,
- `execution.transfer_min_reserve_usdt` left behind in the source wallet, always,
- `execution.transfer_daily_max_usdt` per UTC day (by the clock), so a fault loop cannot drain a wallet.
A transfer is written to the ledger as PENDING before the request leaves, then CONFIRMED or FAILED with
the exchange's answer, and every attempt (and every refusal by the caps) is an audit event, so a restart
or an auditor sees each movement of money. Amounts are in the asset; the caps are in USDT, so transfers
of any other asset are refused (the node margins in USDT).

The transport is the venue's: `EngineTransfers` moves money inside our matching engine (backtest and
paper on SimVenue, delivering the balance updates through the venue like any other engine event);
`kestrel.binance.transfers.BinanceWalletTransfers` calls the exchange (or the simulator).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Protocol

from kestrel.config.models import ExecutionConfig
from kestrel.core.clock import Clock
from kestrel.core.enums import Market
from kestrel.core.errors import InvalidOrderError
from kestrel.core.logs import get_logger
from kestrel.core.transfers import TransferDirection, TransferResult, TransferStatus
from kestrel.matching.venue import SimVenue
from kestrel.storage.ledger import Ledger

log = get_logger(__name__)
NANOS_PER_DAY = 86_400 * 1_000_000_000
CAPPED_ASSET = "USDT"
_CENT = Decimal("0.01")


class TransferTransport(Protocol):
    async def transfer(self, direction: TransferDirection, asset: str, amount: Decimal) -> TransferResult: ...


class EngineTransfers:
    """Transfers inside our matching engine, for the account behind a `SimVenue`."""

    def __init__(self, venue: SimVenue) -> None:
        self.venue = venue
        self._ids = itertools.count(1)

    async def transfer(self, direction: TransferDirection, asset: str, amount: Decimal) -> TransferResult:
        venue = self.venue
        now = venue.clock.timestamp_ns()
        try:
            events = venue.engine.transfer(venue.account_id, direction, asset, amount, now)
        except InvalidOrderError as error:
            return TransferResult(direction, asset, amount, TransferStatus.FAILED, None, now, f"{error.code}: {error}")
        venue.on_engine_events(events)
        return TransferResult(direction, asset, amount, TransferStatus.CONFIRMED, next(self._ids), now)


@dataclass(frozen=True, slots=True)
class TransferPlan:
    amount: Decimal  # zero when nothing may move
    reason: str  # why this amount (which cap bound it), for the audit trail


def plan_transfer(
    shortfall: Decimal, source_free: Decimal, moved_today: Decimal, config: ExecutionConfig
) -> TransferPlan:
    """How much of `shortfall` may move now (pure; amounts in USDT, cut down to the cent)."""
    limits = [
        (shortfall, "the shortfall"),
        (Decimal(str(config.transfer_max_usdt)), "the per-transfer cap"),
        (source_free - Decimal(str(config.transfer_min_reserve_usdt)), "the source reserve"),
        (Decimal(str(config.transfer_daily_max_usdt)) - moved_today, "the daily cap"),
    ]
    amount, reason = min(limits, key=lambda limit: limit[0])
    amount = max(Decimal(0), amount).quantize(_CENT, rounding=ROUND_DOWN)
    return TransferPlan(amount, f"bound by {reason}")


class TransferManager:
    def __init__(
        self,
        transport: TransferTransport,
        clock: Clock,
        config: ExecutionConfig,
        free: Callable[[Market, str], Decimal],
        ledger: Ledger | None = None,
        id_prefix: str = "transfer",
    ) -> None:
        self.transport = transport
        self.clock = clock
        self.config = config
        self.free = free  # what the source wallet can give now (spot free / futures max withdrawable)
        self.ledger = ledger
        self.id_prefix = id_prefix
        self._ids = itertools.count(1)
        self._day = -1
        self._moved_today = Decimal(0)
        self.results: list[TransferResult] = []

    def moved_today(self) -> Decimal:
        day = self.clock.timestamp_ns() // NANOS_PER_DAY
        if day != self._day:
            self._day, self._moved_today = day, Decimal(0)
        return self._moved_today

    async def top_up(self, target: Market, asset: str, shortfall: Decimal) -> TransferResult | None:
        """Move up to `shortfall` of `asset` into the `target` wallet. None when the caps allow nothing."""
        direction = TransferDirection.into(target)
        now = self.clock.timestamp_ns()
        transfer_id = f"{self.id_prefix}-{now}-{next(self._ids)}"
        if asset != CAPPED_ASSET:
            self._audit(
                "transfer.refused", transfer_id, {"asset": asset, "reason": f"only {CAPPED_ASSET} has caps"}, now
            )
            return None
        plan = plan_transfer(shortfall, self.free(direction.source, asset), self.moved_today(), self.config)
        detail: dict[str, object] = {
            "direction": direction.value,
            "asset": asset,
            "shortfall": str(shortfall),
            "plan": plan.reason,
        }
        if plan.amount <= 0:
            self._audit("transfer.refused", transfer_id, detail, now)
            return None
        if self.ledger is not None:  # written before the request leaves
            self.ledger.record_transfer(
                transfer_id, asset, plan.amount, direction.source.value, direction.target.value,
                TransferStatus.PENDING.value, now,
            )  # fmt: skip
        result = await self.transport.transfer(direction, asset, plan.amount)
        if result.status is TransferStatus.CONFIRMED:
            self._moved_today += plan.amount
        if self.ledger is not None:
            self.ledger.record_transfer(
                transfer_id, asset, plan.amount, direction.source.value, direction.target.value,
                result.status.value, result.ts_event,
            )  # fmt: skip
        detail |= {"amount": str(plan.amount), "status": result.status.value, "exchange_id": result.exchange_id}
        if result.reason:
            detail["reason"] = result.reason
        self._audit("transfer", transfer_id, detail, result.ts_event)
        self.results.append(result)
        log.info("wallet transfer", transfer_id=transfer_id, **detail)
        return result

    def _audit(self, kind: str, transfer_id: str, detail: Mapping[str, object], ts: int) -> None:
        if self.ledger is not None:
            self.ledger.audit(kind, detail, ts, subject=transfer_id)
