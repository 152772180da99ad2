"""Wallet transfers spot ↔ USD-M futures over Binance's universal transfer (`/sapi/v1/asset/transfer`).

The endpoint takes no client-side id, so a request whose outcome is unknown (5xx, timeout) cannot be
looked up by id as an order can. It is resolved from the transfer history instead: once the request can
no longer be accepted (recvWindow past its timestamp), a CONFIRMED row of the same type, asset and amount
stamped at or after the request and not already claimed by this client is the transfer; no such row ⇒ it
never happened. Never resubmitted blindly (R-EX-3 applies to money as it does to orders).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from kestrel.binance.http.client import BinanceApiError, BinanceHttpClient, UnknownOutcome, with_retries
from kestrel.binance.http.endpoints import SPOT
from kestrel.core.clock import Clock
from kestrel.core.errors import TemporaryError
from kestrel.core.logs import get_logger
from kestrel.core.transfers import TransferDirection, TransferResult, TransferStatus

log = get_logger(__name__)
_TRANSFER = SPOT["asset_transfer"]
_HISTORY = SPOT["asset_transfer_history"]
_CLOCK_MARGIN_MS = 1_000  # exchange stamps may precede our request's timestamp by the clock error


class BinanceWalletTransfers:
    """Implements `kestrel.execution.transfers.TransferTransport` for one Binance account."""

    def __init__(self, http: BinanceHttpClient, clock: Clock) -> None:
        self.http = http
        self.clock = clock
        self._claimed: set[int] = set()  # tranIds this client has reported (one row answers one request)
        self.resolved_by_history = 0

    def _server_ms(self) -> int:
        return self.clock.timestamp_ms() + self.http.server_offset_ms

    async def transfer(self, direction: TransferDirection, asset: str, amount: Decimal) -> TransferResult:
        sent_ms = self._server_ms()
        params = {"type": direction.value, "asset": asset, "amount": format(amount, "f")}
        try:
            body = await self.http.call(_TRANSFER, params)
        except UnknownOutcome as error:
            log.warning("transfer outcome unknown: reading the history", direction=direction.value, error=str(error))
            return await self._resolve(direction, asset, amount, sent_ms)
        except BinanceApiError as error:
            return self._result(direction, asset, amount, TransferStatus.FAILED, None, f"{error.code}: {error}")
        exchange_id = int(body["tranId"])
        self._claimed.add(exchange_id)
        return self._result(direction, asset, amount, TransferStatus.CONFIRMED, exchange_id)

    async def _resolve(self, direction: TransferDirection, asset: str, amount: Decimal, sent_ms: int) -> TransferResult:
        # wait until the exchange can no longer accept the request, so the history is final for it
        wait_ms = sent_ms + self.http.recv_window_ms + _CLOCK_MARGIN_MS - self._server_ms()
        if wait_ms > 0:
            await asyncio.sleep(wait_ms / 1000)
        rows = await with_retries(lambda: self._history(direction, sent_ms - _CLOCK_MARGIN_MS))
        self.resolved_by_history += 1
        for row in sorted(rows, key=lambda r: int(r["tranId"])):
            exchange_id = int(row["tranId"])
            matches = row.get("asset") == asset and Decimal(str(row.get("amount"))) == amount
            if matches and row.get("status") == "CONFIRMED" and exchange_id not in self._claimed:
                self._claimed.add(exchange_id)
                return self._result(direction, asset, amount, TransferStatus.CONFIRMED, exchange_id)
        return self._result(direction, asset, amount, TransferStatus.FAILED, None, "not in the exchange's history")

    async def _history(self, direction: TransferDirection, start_ms: int) -> list[dict[str, Any]]:
        try:
            body = await self.http.call(_HISTORY, {"type": direction.value, "startTime": start_ms, "size": 100})
        except BinanceApiError as error:
            raise TemporaryError(f"transfer history unavailable: {error}") from error
        return list(body.get("rows") or [])

    def _result(
        self,
        direction: TransferDirection,
        asset: str,
        amount: Decimal,
        status: TransferStatus,
        exchange_id: int | None,
        reason: str | None = None,
    ) -> TransferResult:
        return TransferResult(direction, asset, amount, status, exchange_id, self.clock.timestamp_ns(), reason)
