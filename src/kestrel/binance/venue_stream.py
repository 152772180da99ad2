"""User data frames → the venue's view and events (the stream half of `BinanceVenue`).

Futures conditional orders live on the Algo service: their `ALGO_UPDATE`s carry the client algo id,
and once triggered the order they created in the matching engine reports through
`ORDER_TRADE_UPDATE` (fills included). Those are joined to the algo order by the created order's id
(`ai`), or by client id when the exchange reuses it. An update of a conditional type that cannot be
joined yet (it raced its ALGO_UPDATE) waits up to `UNLINKED_WAIT_NS`, then is shown as an order of its
own rather than lost.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING

from kestrel.binance.order_view import key_of
from kestrel.binance.schemas.trading import FUTURES_CORE_TYPE
from kestrel.binance.schemas.user_data import (
    OtherFrame,
    WireAccountUpdate,
    WireAlgoUpdate,
    WireBalanceUpdate,
    WireEventStreamTerminated,
    WireExecutionReport,
    WireListenKeyExpired,
    WireListStatus,
    WireOrderTradeUpdate,
    WireOutboundAccountPosition,
    WireUserEvent,
    algo_update,
    balance_delta,
    decode_user_frame,
    futures_account_update,
    futures_order_update,
    spot_account_update,
    spot_order_update,
)
from kestrel.binance.userdata import ListenKeyStream, WsApiUserStream
from kestrel.core.enums import Market
from kestrel.core.errors import DataError
from kestrel.core.logs import get_logger
from kestrel.core.venue import AccountUpdate, AccountUpdateReason, Balance, OrderUpdate

if TYPE_CHECKING:
    from kestrel.binance.venue import BinanceVenue

log = get_logger(__name__)

UNLINKED_WAIT_NS = 2_000_000_000


class StreamDispatcher:
    def __init__(self, venue: BinanceVenue) -> None:
        self.venue = venue
        self.last_event_ns: dict[Market, int] = {}
        self.malformed = 0
        self.ignored: dict[str, int] = {}
        self._unlinked: dict[int, list[tuple[int, OrderUpdate]]] = {}  # futures order id → waiting updates

    def on_frame(self, market: Market, data: bytes, ts_init: int) -> None:
        try:
            event = decode_user_frame(data)
        except DataError as error:
            self.malformed += 1
            log.warning("malformed user data frame", market=market.value, error=str(error))
            return
        if isinstance(event, OtherFrame):
            kind = event.event_type
            if kind is not None:  # an event type we do not read (an answer to a WS API request has none)
                self.last_event_ns[market] = ts_init
                self.ignored[kind] = self.ignored.get(kind, 0) + 1
            return
        self.last_event_ns[market] = ts_init
        try:
            self._dispatch(market, event, ts_init)
        except (DataError, ValueError) as error:
            self.malformed += 1
            log.warning("unreadable user data event", market=market.value, error=str(error))

    def _dispatch(self, market: Market, event: WireUserEvent, ts_init: int) -> None:
        account = self.venue.account_id
        if isinstance(event, WireExecutionReport):
            self.venue.view.apply(spot_order_update(event, account, ts_init))
        elif isinstance(event, WireOrderTradeUpdate):
            self._futures_order(futures_order_update(event, account, ts_init), event.o.ot or event.o.o, ts_init)
        elif isinstance(event, WireAlgoUpdate):
            self._algo(event, ts_init)
        elif isinstance(event, WireAccountUpdate):
            self._futures_account(event, ts_init)
        elif isinstance(event, WireOutboundAccountPosition):
            self._account(spot_account_update(event, account, ts_init))
        elif isinstance(event, WireBalanceUpdate):
            self._balance_delta(event, ts_init)
        elif isinstance(event, WireListStatus):
            log.debug("order list status", list_id=event.C, status=event.L)
        elif isinstance(event, WireListenKeyExpired | WireEventStreamTerminated):
            self._stream_ended(market, event)

    # ---- orders ---------------------------------------------------------------------------------
    def _futures_order(self, update: OrderUpdate, wire_type: str, ts_init: int) -> None:
        view = self.venue.view
        key = key_of(update.order)
        tracked = view.get(key)
        if tracked is not None:
            if tracked.algo:  # the created order reuses the algo order's client id
                view.link_resulting_order(key, update.order.order_id)
                view.apply(_as_algo(update, key[2]), algo=True)
            else:
                view.apply(update)
            return
        algo_key = view.algo_by_resulting.get(update.order.order_id)
        if algo_key is not None:
            view.apply(_as_algo(update, algo_key[2]), algo=True)
            return
        conditional = FUTURES_CORE_TYPE.get(wire_type)
        if conditional is not None and conditional.is_conditional and self._open_algo_on(update.order.symbol):
            self._unlinked.setdefault(update.order.order_id, []).append((ts_init, update))
            return
        view.apply(update)  # an order placed elsewhere, or the exchange's (liquidation, ADL)

    def _open_algo_on(self, symbol: str) -> bool:
        return any(
            t.algo and k[1] == symbol and not t.snapshot.status.is_terminal for k, t in self.venue.view.orders.items()
        )

    def _algo(self, wire: WireAlgoUpdate, ts_init: int) -> None:
        view = self.venue.view
        result = algo_update(wire, self.venue.account_id, ts_init)
        key = key_of(result.update.order)
        if result.resulting_order_id is not None:
            view.link_resulting_order(key, result.resulting_order_id)
        view.apply(result.update, algo=True)
        if result.resulting_order_id is not None:
            for _, waiting in self._unlinked.pop(result.resulting_order_id, []):
                view.apply(_as_algo(waiting, key[2]), algo=True)

    def flush_unlinked(self, now_ns: int) -> None:
        """Updates that waited too long for their ALGO_UPDATE: shown as orders of their own."""
        for order_id in [i for i, items in self._unlinked.items() if now_ns - items[0][0] > UNLINKED_WAIT_NS]:
            for _, update in self._unlinked.pop(order_id):
                algo_key = self.venue.view.algo_by_resulting.get(order_id)
                if algo_key is not None:
                    self.venue.view.apply(_as_algo(update, algo_key[2]), algo=True)
                else:
                    self.venue.view.apply(update)

    # ---- accounts -------------------------------------------------------------------------------
    def _futures_account(self, wire: WireAccountUpdate, ts_init: int) -> None:
        venue = self.venue
        known = {asset: b for (m, asset), b in venue.balances_view.items() if m is Market.FUTURES}
        self._account(futures_account_update(wire, venue.account_id, ts_init, known, venue.positions_view))

    def _account(self, update: AccountUpdate) -> None:
        venue = self.venue
        for balance in update.balances:
            venue.balances_view[(balance.market, balance.asset)] = balance
        for position in update.positions:
            venue.positions_view[position.symbol] = position
        venue.emit(update)

    def _balance_delta(self, wire: WireBalanceUpdate, ts_init: int) -> None:
        asset, delta, ts_event = balance_delta(wire)
        known = self.venue.balances_view.get((Market.SPOT, asset))
        free, locked = (known.free, known.locked) if known is not None else (Decimal(0), Decimal(0))
        balance = Balance(Market.SPOT, asset, free + delta, locked, free + delta + locked)
        update = AccountUpdate(
            self.venue.account_id, Market.SPOT, AccountUpdateReason.DEPOSIT, (balance,), (), ts_event, ts_init
        )
        self._account(update)

    # ---- stream life ----------------------------------------------------------------------------
    def _stream_ended(self, market: Market, event: WireListenKeyExpired | WireEventStreamTerminated) -> None:
        stream = self.venue.streams.get(market)
        reason = "listenKey expired" if isinstance(event, WireListenKeyExpired) else "event stream terminated"
        log.warning("user data stream ended by the exchange; re-establishing", market=market.value, reason=reason)
        if isinstance(stream, ListenKeyStream):
            stream.expire(reason)
        elif isinstance(stream, WsApiUserStream):
            stream.terminated(reason)


def _as_algo(update: OrderUpdate, algo_client_id: str) -> OrderUpdate:
    """An update of the order a triggered algo order created, as an update of the algo order."""
    from kestrel.core.identifiers import ClientOrderId

    client_id = ClientOrderId(algo_client_id)
    order = replace(update.order, client_order_id=client_id, triggered=True)
    fill = replace(update.fill, client_order_id=client_id) if update.fill is not None else None
    return replace(update, order=order, fill=fill)
