"""The recovery half of `BinanceVenue`: REST answers into the view, unknown outcomes resolved by
query, fills fetched when a report is ahead of them, the REST polling fallback while the user data
stream is silent, and the resync after every reconnect (see `kestrel.binance.venue`)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING

from kestrel.binance.http.client import BinanceApiError
from kestrel.binance.order_view import OrderKey, key_of
from kestrel.binance.venue_rest import OrderAnswer, OrderNotFound
from kestrel.core.enums import Market, OrderStatus
from kestrel.core.errors import KestrelError, TemporaryError
from kestrel.core.identifiers import ClientOrderId
from kestrel.core.logs import get_logger
from kestrel.core.venue import (
    AccountUpdate,
    AccountUpdateReason,
    ExecutionType,
    OrderSnapshot,
    OrderUpdate,
    PositionSnapshot,
)

if TYPE_CHECKING:
    from kestrel.binance.venue import BinanceVenue

log = get_logger(__name__)
NEVER_PLACED_CODE = -2013


class Recovery:
    def __init__(self, venue: BinanceVenue) -> None:
        self.venue = venue

    # ==== applying REST answers ===================================================================
    def apply_answer(self, answer: OrderAnswer, execution: ExecutionType | None = None) -> None:
        """Fills listed in the answer (each once), then the order's state."""
        venue = self.venue
        snapshot = answer.snapshot
        ts_init = venue.now_ns()
        for fill in answer.fills:
            venue.view.apply(OrderUpdate(venue.account_id, snapshot, ExecutionType.TRADE, fill.ts_event, ts_init, fill))
        kind = execution or execution_of(snapshot.status)
        venue.view.apply(OrderUpdate(venue.account_id, snapshot, kind, snapshot.ts_updated, ts_init), algo=answer.algo)
        if answer.resulting is not None:
            key = key_of(snapshot)
            venue.view.link_resulting_order(key, answer.resulting.order_id)
            resulting = replace(answer.resulting, client_order_id=snapshot.client_order_id, triggered=True)
            venue.view.apply(
                OrderUpdate(venue.account_id, resulting, execution_of(resulting.status), resulting.ts_updated, ts_init)
            )

    async def query_any(self, key: OrderKey) -> OrderAnswer | None:
        """Query an order the view may not know (from the ledger): as a plain order, then on futures
        as an algo order; None when the exchange knows neither."""
        venue = self.venue
        market, symbol, client_id = key
        tracked = venue.view.get(key)
        kinds = [tracked.algo] if tracked is not None else ([False, True] if market is Market.FUTURES else [False])
        for algo in kinds:
            with contextlib.suppress(OrderNotFound):
                return await venue.rest[market].query_order(symbol, client_id, algo)
        return None

    async def query(self, key: OrderKey) -> OrderAnswer:
        venue = self.venue
        market, symbol, client_id = key
        tracked = venue.view.get(key)
        return await venue.rest[market].query_order(symbol, client_id, tracked is not None and tracked.algo)

    async def refresh(self, key: OrderKey) -> bool:
        """Read the order's state now (and its missing fills); False when the exchange does not know it."""
        try:
            answer = await self.query(key)
        except OrderNotFound:
            return False
        except (TemporaryError, BinanceApiError) as error:
            log.warning("order query failed", key=key, error=str(error))
            return True
        self.apply_answer(answer)
        await self.sync_fills(key)
        return True

    async def refresh_until_known(self, key: OrderKey, execution: ExecutionType | None = None) -> None:
        """After a cancel / modify with an unknown outcome: query until the exchange answers."""
        venue = self.venue
        delay = venue.settings.resolve_initial_delay_s
        while not venue.stopping:
            await asyncio.sleep(delay)
            delay = min(delay * 2, venue.settings.resolve_max_delay_s)
            try:
                answer = await self.query(key)
            except OrderNotFound:
                return
            except (TemporaryError, BinanceApiError) as error:
                log.warning("order query failed; retrying", key=key, error=str(error))
                continue
            self.apply_answer(answer, execution)
            await self.sync_fills(key)
            return

    async def resolve_unknown(self, key: OrderKey) -> None:
        """A submission whose outcome is unknown: query by client id until the exchange knows the order,
        or until it can no longer accept it (then it was never placed). Never resend."""
        venue = self.venue
        deadline = venue.now_ns() + int(venue.settings.unknown_deadline_s * 1e9)
        delay = venue.settings.resolve_initial_delay_s
        while not venue.stopping:
            await asyncio.sleep(delay)
            delay = min(delay * 2, venue.settings.resolve_max_delay_s)
            tracked = venue.view.get(key)
            if tracked is None or tracked.snapshot.status is not OrderStatus.UNKNOWN:
                venue.counters.resolved_by_stream += tracked is not None
                return  # the user data stream told us first
            try:
                answer = await self.query(key)
            except OrderNotFound:
                if venue.now_ns() >= deadline:
                    venue.counters.never_placed += 1
                    now = venue.now_ns()
                    venue.view.reject(
                        key, NEVER_PLACED_CODE, "never placed (unknown outcome resolved by query)", now, now
                    )
                    return
                continue
            except (TemporaryError, BinanceApiError) as error:
                log.warning("order query failed; retrying", key=key, error=str(error))
                continue
            venue.counters.resolved_by_query += 1
            self.apply_answer(answer)
            await self.sync_fills(key)
            return

    async def resolve_legs(self, legs: list[OrderKey]) -> bool:
        venue = self.venue
        deadline = venue.now_ns() + int(venue.settings.unknown_deadline_s * 1e9)
        delay = venue.settings.resolve_initial_delay_s
        while not venue.stopping:
            await asyncio.sleep(delay)
            delay = min(delay * 2, venue.settings.resolve_max_delay_s)
            if any(venue.view.get(leg) is not None for leg in legs):
                venue.counters.resolved_by_stream += 1
                return True
            found = False
            for leg in legs:
                with contextlib.suppress(OrderNotFound):
                    try:
                        answer = await self.query(leg)
                    except (TemporaryError, BinanceApiError):
                        continue
                    self.apply_answer(answer)
                    found = True
            if found:
                venue.counters.resolved_by_query += 1
                return True
            if venue.now_ns() >= deadline:
                return False
        return False

    # ==== fills from REST =========================================================================
    def on_missing_fills(self, key: OrderKey) -> None:
        venue = self.venue
        if key in venue.fill_syncs or venue.stopping:
            return
        venue.fill_syncs.add(key)

        async def later() -> None:
            try:
                await asyncio.sleep(venue.settings.fill_grace_s)  # the stream normally brings them
                await self.sync_fills(key)
            finally:
                venue.fill_syncs.discard(key)

        venue.spawn(later())

    async def sync_fills(self, key: OrderKey) -> None:
        """Fetch the order's trades when a report claims fills we have not seen."""
        venue = self.venue
        for attempt in range(venue.settings.fill_sync_attempts):
            tracked = venue.view.get(key)
            if tracked is None or not tracked.missing_fills:
                return
            order_id = tracked.resulting_order_id if tracked.algo else tracked.snapshot.order_id
            market, symbol, client_id = key
            if not order_id or venue.trades_unavailable.get(market):
                self.synthesize(key)
                return
            try:
                fills = await venue.rest[market].order_fills(symbol, order_id, ClientOrderId(client_id))
            except BinanceApiError as error:
                if error.http_status == 404:  # the venue serves no trade list (our simulator, so far)
                    log.warning("no trade list on this venue: fills derived from order totals", market=market.value)
                    venue.trades_unavailable[market] = True
                    continue
                log.warning("trade list refused; retrying", key=key, error=str(error), attempt=attempt)
                await asyncio.sleep(venue.settings.resolve_max_delay_s)
                continue
            except (TemporaryError, KestrelError) as error:
                log.warning("trade list failed; retrying", key=key, error=str(error), attempt=attempt)
                await asyncio.sleep(venue.settings.resolve_max_delay_s)
                continue
            cumulative = Decimal(0)
            ts_init = venue.now_ns()
            before = tracked.filled
            for fill in fills:
                cumulative += fill.quantity
                venue.view.apply_fill(key, fill, ts_init, cumulative)
            venue.counters.fills_from_rest += tracked.filled != before
            if not tracked.missing_fills:
                return
            await asyncio.sleep(venue.settings.resolve_initial_delay_s * 2**attempt)
        log.error("fills still missing after the trade list", key=key)

    def synthesize(self, key: OrderKey) -> None:
        venue = self.venue
        if venue.view.synthesize_missing_fill(key, venue.now_ns()) is not None:
            venue.counters.fills_from_rest += 1

    # ==== stream support ==========================================================================
    def on_stream_connected(self, market: Market) -> None:
        venue = self.venue
        if venue.started and not venue.stopping:
            venue.counters.resyncs += 1
            venue.spawn(self.resync(market))

    async def resync(self, market: Market) -> None:
        """After a reconnect: what happened while no connection was up."""
        await self.poll(market, all_symbols=True)
        await self.refresh_account(market)

    async def refresh_account(self, market: Market) -> None:
        venue = self.venue
        rest = venue.rest[market]
        try:
            balances = await rest.balances()
            positions = await rest.positions(venue.leverage, venue.margin_types) if market is Market.FUTURES else []
        except (TemporaryError, BinanceApiError) as error:
            log.warning("account refresh failed", market=market.value, error=str(error))
            return
        changed_balances = tuple(b for b in balances if venue.balances_view.get((market, b.asset)) != b)
        changed_positions = tuple(p for p in positions if position_changed(venue.positions_view.get(p.symbol), p))
        for balance in changed_balances:
            venue.balances_view[(market, balance.asset)] = balance
        for position in changed_positions:
            venue.positions_view[position.symbol] = position
        if changed_balances or changed_positions:
            now = venue.now_ns()
            venue.emit(
                AccountUpdate(
                    venue.account_id,
                    market,
                    AccountUpdateReason.ORDER,
                    changed_balances,
                    changed_positions,
                    now,
                    now,
                )
            )

    async def poll(self, market: Market, all_symbols: bool = False) -> None:
        """Open orders by REST: every locally open order gets the exchange's state."""
        venue = self.venue
        venue.counters.polls += 1
        venue.last_poll_ns[market] = venue.now_ns()
        rest = venue.rest[market]
        local = [o for o in venue.view.open_orders(market) if o.status is not OrderStatus.SUBMITTED]
        symbols = sorted({o.symbol for o in local})
        try:
            if all_symbols:
                answers = await rest.open_orders()
            else:
                answers = [a for symbol in symbols for a in await rest.open_orders(symbol)]
        except (TemporaryError, BinanceApiError) as error:
            log.warning("open-order poll failed", market=market.value, error=str(error))
            return
        listed = set()
        for answer in answers:
            listed.add(key_of(answer.snapshot))
            self.apply_answer(answer)
        for snapshot in local:
            key = key_of(snapshot)
            if key not in listed and snapshot.status is not OrderStatus.UNKNOWN:
                await self.refresh(key)  # no longer open: filled, cancelled or expired meanwhile
        for key in [key_of(o) for o in venue.view.open_orders(market)]:
            tracked = venue.view.get(key)
            if tracked is not None and tracked.missing_fills:
                await self.sync_fills(key)

    async def watch(self) -> None:
        """Silence detection and the REST polling fallback (and the dispatcher's housekeeping)."""
        venue = self.venue
        interval = min(1.0, venue.settings.poll_interval_s / 2)
        silence_ns = int(venue.settings.silence_s * 1e9)
        poll_ns = int(venue.settings.poll_interval_s * 1e9)
        while not venue.stopping:
            await asyncio.sleep(interval)
            now = venue.now_ns()
            venue.dispatcher.flush_unlinked(now)
            if len(venue.view.orders) > venue.settings.keep_finished_orders + 1000:
                venue.view.forget_terminal(venue.settings.keep_finished_orders)  # bounded memory
            for market, stream in venue.streams.items():
                has_open = any(o.status is not OrderStatus.SUBMITTED for o in venue.view.open_orders(market))
                last_heard = max(venue.dispatcher.last_event_ns.get(market, 0), stream.counters.last_connect_ns)
                silent = not stream.connected or now - last_heard > silence_ns
                if has_open and silent:
                    if not venue.polling[market]:
                        venue.polling[market] = True
                        venue.counters.poll_episodes += 1
                        log.warning("user data stream silent with open orders: polling by REST", market=market.value)
                    if now - venue.last_poll_ns[market] >= poll_ns:
                        try:
                            await self.poll(market)
                        except Exception as exc:  # the watchdog must survive anything
                            log.exception("poll failed", market=market.value, error=str(exc))
                elif venue.polling[market]:
                    venue.polling[market] = False
                    log.info("user data stream back: polling stopped", market=market.value)


def execution_of(status: OrderStatus) -> ExecutionType:
    return {
        OrderStatus.CANCELED: ExecutionType.CANCELED,
        OrderStatus.EXPIRED: ExecutionType.EXPIRED,
        OrderStatus.REJECTED: ExecutionType.REJECTED,
        OrderStatus.FILLED: ExecutionType.TRADE,
        OrderStatus.PARTIALLY_FILLED: ExecutionType.TRADE,
    }.get(status, ExecutionType.NEW)


def exchange_view(answer: OrderAnswer) -> OrderSnapshot:
    """What the exchange says about the order (an algo order: its resulting order's fills and state)."""
    snapshot = answer.snapshot
    if answer.resulting is None:
        return snapshot
    resulting = answer.resulting
    return replace(
        snapshot,
        status=resulting.status,
        filled_quantity=resulting.filled_quantity,
        cumulative_quote=resulting.cumulative_quote,
        ts_updated=max(snapshot.ts_updated, resulting.ts_updated),
        triggered=True,
    )


def position_changed(old: PositionSnapshot | None, new: PositionSnapshot) -> bool:
    if old is None:
        return new.quantity != 0
    return (old.quantity, old.entry_price, old.margin_type) != (new.quantity, new.entry_price, new.margin_type)
