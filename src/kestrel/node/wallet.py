"""The node's wallet keeper (R-EX-6): an order refused for want of balance triggers a capped transfer.

The exchange says "not enough" in three ways: USD-M -2019 (margin is insufficient) and -2018 (balance
is insufficient), spot -2010 with an insufficient-balance message. For such a refusal of a futures
order or of a spot buy, the keeper asks the `TransferManager` to move the order's need (futures:
notional / leverage, plus a tenth for fees and price moves; spot buy: the notional) from the other
wallet, once per refused order; the caps, the reserve and the ledger trail are the manager's. The
order itself is not resent: the strategy sees its REJECTED update and decides, as it does for any
refusal (a resend here would be an order the strategy never asked for).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal

from kestrel.core.enums import Market, OrderStatus, Side
from kestrel.core.logs import get_logger
from kestrel.core.venue import OrderUpdate, VenueEvent
from kestrel.execution.transfers import CAPPED_ASSET, TransferManager

log = get_logger(__name__)
FUTURES_SHORT_CODES = {-2018, -2019}
SPOT_SHORT_CODE = -2010
_HEADROOM = Decimal("1.1")


def is_short_of_balance(update: OrderUpdate) -> bool:
    if update.order.status is not OrderStatus.REJECTED or update.code is None:
        return False
    if update.order.market is Market.FUTURES:
        return update.code in FUTURES_SHORT_CODES
    return update.code == SPOT_SHORT_CODE and "insufficient" in (update.reason or "").lower()


class WalletKeeper:
    def __init__(
        self,
        manager: TransferManager,
        leverage: int,
        price_of: Callable[[Market, str], Decimal | None],
    ) -> None:
        self.manager = manager
        self.leverage = max(1, leverage)
        self.price_of = price_of
        self.tasks: set[asyncio.Task[object]] = set()
        self._handled: set[str] = set()

    def need_of(self, update: OrderUpdate) -> Decimal | None:
        """USDT the order's wallet lacked, or None when a transfer cannot help (a spot sell, no price)."""
        order = update.order
        if order.market is Market.SPOT and order.side is Side.SELL:
            return None
        if order.market is Market.SPOT and not order.symbol.endswith(CAPPED_ASSET):
            return None
        price = order.price or self.price_of(order.market, order.symbol)
        if price is None or order.quantity is None:
            return None
        notional = order.quantity * price
        return notional * _HEADROOM / self.leverage if order.market is Market.FUTURES else notional * _HEADROOM

    def on_event(self, event: VenueEvent) -> None:
        if not isinstance(event, OrderUpdate) or not is_short_of_balance(event):
            return
        client_order_id = event.order.client_order_id
        need = self.need_of(event)
        if need is None or client_order_id in self._handled:
            return
        self._handled.add(client_order_id)
        task: asyncio.Task[object] = asyncio.get_running_loop().create_task(
            self.manager.top_up(event.order.market, CAPPED_ASSET, need)
        )
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[object]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("wallet transfer failed", error=repr(task.exception()))

    async def drain(self) -> None:
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
