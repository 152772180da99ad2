"""`BinanceVenue`: the real exchange (or our simulator, by URL alone) behind the `Venue` interface.

It behaves as `SimVenue` does from a strategy's point of view: commands return at once (the client
order id), outcomes arrive later as `OrderUpdate` / `AccountUpdate` events in order, and queries
answer from the local view without I/O. Underneath, one account over spot and USD-M futures:

- Commands become asyncio tasks; the commands of one order run one after another (a cancel sent
  while its order's submission is in flight waits for the answer).
- The user data stream is the source of truth for fills; REST answers, queries and trade lists fill
  gaps, and `OrderView` merges every source so each change is shown once (fills by trade id).
- A write whose outcome is unknown (5xx, timeout) is resolved by querying the order by its client
  id — never by sending it again. An order the exchange still does not know once its request can no
  longer be accepted (recvWindow + margin) was never placed: it is reported REJECTED.
- A refused cancel or modify is reported after the order's true state has been read (it may have
  filled meanwhile), as a REJECTED update carrying the exchange's code.
- Silence: no user event for `silence_s` while orders are open, or the stream down ⇒ the open orders
  are polled by REST every `poll_interval_s` until events flow again; every (re)connection re-reads
  open orders, balances and positions (what happened while no connection was up).
- The local view (orders, balances, positions) is rebuilt from REST at `start()`, after the streams
  are up; events that arrive meanwhile are applied after it.

Commands must be called from the event loop that ran `start()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from kestrel.binance.http.breaker import CircuitBreaker
from kestrel.binance.http.client import BinanceApiError, BinanceHttpClient, UnknownOutcome
from kestrel.binance.http.ratelimit import RateLimitTracker
from kestrel.binance.order_view import OrderKey, OrderView, key_of
from kestrel.binance.schemas import trading as wire_requests
from kestrel.binance.schemas.trading import WireRequest, is_algo_order
from kestrel.binance.userdata import ListenKeyStream, UserStream, WsApiUserStream
from kestrel.binance.venue_rest import MarketRest, OrderAnswer, OrderNotFound, error_code
from kestrel.binance.venue_settings import BinanceVenueSettings, VenueSnapshot
from kestrel.binance.venue_stream import StreamDispatcher
from kestrel.core.clock import Clock
from kestrel.core.enums import MarginType, Market, OrderStatus
from kestrel.core.errors import ConfigurationError, InvalidOrderError, KestrelError, RateLimited, TemporaryError
from kestrel.core.identifiers import ClientOrderId, IntentId, client_order_id
from kestrel.core.logs import get_logger
from kestrel.core.venue import (
    AccountUpdate,
    AccountUpdateReason,
    Balance,
    ExecutionType,
    OcoRequest,
    OrderRequest,
    OrderSnapshot,
    OrderUpdate,
    PositionSnapshot,
    VenueEvent,
    VenueEventHandler,
)

log = get_logger(__name__)

RATE_LIMITED_CODE = -1003
NEVER_PLACED_CODE = -2013
UNKNOWN_ORDER = (-2011, "Unknown order sent.")


@dataclass
class VenueCounters:
    events: int = 0
    commands: int = 0
    unknown_outcomes: int = 0
    resolved_by_query: int = 0
    never_placed: int = 0
    fills_from_rest: int = 0
    polls: int = 0
    poll_episodes: int = 0
    resyncs: int = 0
    handler_errors: int = 0
    task_errors: list[str] = field(default_factory=list)


class BinanceVenue:
    """One Binance account (spot and/or USD-M futures). Implements `kestrel.core.venue.Venue`."""

    def __init__(
        self,
        settings: BinanceVenueSettings,
        clock: Clock,
        http: dict[Market, BinanceHttpClient] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.account_id = settings.account_id
        self.counters = VenueCounters()
        self._handler: VenueEventHandler | None = None
        self.http = http or {market: self._make_http(market) for market in settings.markets}
        self.rest = {market: MarketRest(market, self.http[market], clock) for market in settings.markets}
        self.view = OrderView(self.account_id, self._emit, self._on_missing_fills)
        self.balances_view: dict[tuple[Market, str], Balance] = {}
        self.positions_view: dict[str, PositionSnapshot] = {}
        self.leverage: dict[str, int] = {}
        self.margin_types: dict[str, MarginType] = {}
        self.streams: dict[Market, UserStream] = {}
        self.dispatcher = StreamDispatcher(self)
        self.polling: dict[Market, bool] = dict.fromkeys(settings.markets, False)
        self.trades_unavailable: dict[Market, bool] = {}
        self._last_poll_ns: dict[Market, int] = dict.fromkeys(settings.markets, 0)
        self._ids = itertools.count(1)
        self._session_tag = f"{settings.client_id_tag}{clock.timestamp_ns()}"
        self._chains: dict[OrderKey, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stream_tasks: list[asyncio.Task[None]] = []
        self._fill_syncs: set[OrderKey] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._buffer: list[tuple[Market, bytes, int]] | None = None
        self.started = False
        self._stopping = False

    def _make_http(self, market: Market) -> BinanceHttpClient:
        settings = self.settings
        spot = market is Market.SPOT
        return BinanceHttpClient(
            settings.spot_rest_url if spot else settings.futures_rest_url,
            self.clock,
            settings.api_key,
            settings.api_secret,
            settings.recv_window_ms,
            settings.request_timeout_ms,
            RateLimitTracker.spot_defaults() if spot else RateLimitTracker.futures_defaults(),
            CircuitBreaker(),
        )

    # ==== lifecycle ===============================================================================
    async def start(self) -> None:
        """Measure the clock offset, open the user streams, rebuild the view, start the watchdog."""
        if not self.settings.api_key or not self.settings.api_secret:
            raise ConfigurationError("BinanceVenue needs venue.api_key and venue.api_secret (from env/.env)")
        self._buffer = []
        for market, rest in self.rest.items():
            offset = await rest.sync_time()
            log.info("server clock offset measured", market=market.value, offset_ms=offset)
        for market in self.settings.markets:
            stream = self._make_stream(market)
            self.streams[market] = stream
            self._stream_tasks.append(asyncio.get_running_loop().create_task(stream.run()))
        deadline = self.clock.timestamp_ns() + int(self.settings.start_timeout_s * 1e9)
        while not all(stream.connected for stream in self.streams.values()):
            if self.clock.timestamp_ns() > deadline:
                down = [m.value for m, s in self.streams.items() if not s.connected]
                await self._stop_streams()
                raise TemporaryError(
                    f"user data stream did not connect within {self.settings.start_timeout_s} s: {down}"
                )
            await asyncio.sleep(0.02)
        await self._rebuild()
        buffered, self._buffer = self._buffer, None
        for market, data, ts_init in buffered:
            self.dispatcher.on_frame(market, data, ts_init)
        self._watcher = asyncio.get_running_loop().create_task(self._watch())
        self.started = True
        log.info(
            "binance venue started", markets=[m.value for m in self.settings.markets], orders=len(self.view.orders)
        )

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Let in-flight commands finish (or resolve), then close streams and sessions."""
        self._stopping = True
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        with contextlib.suppress(TimeoutError):
            await self.drain(timeout_s)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._stop_streams()
        for client in self.http.values():
            await client.close()
        self.started = False

    async def _stop_streams(self) -> None:
        for stream in self.streams.values():
            stream.stop()
        await asyncio.gather(*self._stream_tasks, return_exceptions=True)
        self._stream_tasks.clear()

    async def drain(self, timeout_s: float | None = None) -> None:
        """Wait until every command sent so far has its answer (tests, orderly shutdown)."""

        async def wait_all() -> None:
            while pending := [t for t in self._tasks if not t.done()]:
                await asyncio.gather(*pending, return_exceptions=True)

        await asyncio.wait_for(wait_all(), timeout_s)

    def _make_stream(self, market: Market) -> UserStream:
        settings = self.settings

        def on_frame(data: bytes, ts_init: int, market: Market = market) -> None:
            if self._buffer is not None:
                self._buffer.append((market, data, ts_init))
            else:
                self.dispatcher.on_frame(market, data, ts_init)

        if market is Market.SPOT and settings.spot_user_stream == "ws_api":
            assert settings.api_key is not None
            assert settings.api_secret is not None
            http = self.http[Market.SPOT]
            return WsApiUserStream(
                self.clock, settings.spot_ws_api_url, settings.api_key, settings.api_secret, on_frame,
                self._on_stream_connected, settings.user_stream, server_offset_ms=lambda: http.server_offset_ms,
            )  # fmt: skip
        rest = self.rest[market]
        ws_base = settings.spot_ws_url if market is Market.SPOT else settings.futures_ws_url
        return ListenKeyStream(
            market, self.clock, rest.http, rest.endpoints, ws_base, on_frame, self._on_stream_connected,
            settings.user_stream,
        )  # fmt: skip

    async def _rebuild(self) -> None:
        """The view from REST: open orders, balances, positions (no events: nothing changed)."""
        for market, rest in self.rest.items():
            for answer in await rest.open_orders():
                self.view.seed(answer.snapshot, answer.algo)
                if answer.resulting is not None:
                    self.view.link_resulting_order(key_of(answer.snapshot), answer.resulting.order_id)
            for balance in await rest.balances():
                self.balances_view[(market, balance.asset)] = balance
            if market is Market.FUTURES:
                for position in await rest.positions(self.leverage, self.margin_types):
                    self.positions_view[position.symbol] = position

    # ==== Venue: commands =========================================================================
    def set_event_handler(self, handler: VenueEventHandler) -> None:
        self._handler = handler

    def _next_client_id(self) -> ClientOrderId:
        return client_order_id(IntentId(f"{self._session_tag}-{next(self._ids)}"), "v")

    def submit_order(self, request: OrderRequest) -> ClientOrderId:
        client_id = request.client_order_id or self._next_client_id()
        now = self.clock.timestamp_ns()
        self.counters.commands += 1
        key: OrderKey = (request.market, request.symbol, client_id)
        if request.market not in self.rest:
            self._refuse_now(key, None, f"market {request.market.value} is not enabled on this venue", request)
            return client_id
        existing = self.view.get(key)
        duplicate = existing is not None and not existing.snapshot.status.is_terminal
        if not duplicate:
            self.view.submitted(request, client_id, now, is_algo_order(request.market, request.order_type))
        wire = wire_requests.new_order(request, client_id)
        self._schedule(key, lambda: self._submit(key, wire, duplicate))
        return client_id

    def submit_oco(self, request: OcoRequest) -> str:
        list_id = request.list_client_order_id or self._next_client_id()
        above = replace(request.above, client_order_id=request.above.client_order_id or self._next_client_id())
        below = replace(request.below, client_order_id=request.below.client_order_id or self._next_client_id())
        request = replace(request, above=above, below=below, list_client_order_id=list_id)
        self.counters.commands += 1
        key: OrderKey = (request.market, request.symbol, list_id)
        if request.market is not Market.SPOT or Market.SPOT not in self.rest:
            self._refuse_now(key, -1116, "OCO order lists exist on spot only", None)
            return list_id
        self._schedule(key, lambda: self._submit_oco(key, request))
        return list_id

    def cancel_order(self, market: Market, symbol: str, client_order_id: ClientOrderId) -> None:
        self.counters.commands += 1
        key: OrderKey = (market, symbol, client_order_id)
        self._schedule(key, lambda: self._cancel(key))

    def modify_order(
        self,
        market: Market,
        symbol: str,
        client_order_id: ClientOrderId,
        *,
        price: Decimal | None = None,
        quantity: Decimal | None = None,
    ) -> None:
        self.counters.commands += 1
        key: OrderKey = (market, symbol, client_order_id)
        self._schedule(key, lambda: self._modify(key, price, quantity))

    # ==== Venue: queries (the local view) =========================================================
    def order(self, market: Market, symbol: str, client_order_id: ClientOrderId) -> OrderSnapshot | None:
        return self.view.snapshot((market, symbol, client_order_id))

    def open_orders(self, market: Market | None = None, symbol: str | None = None) -> list[OrderSnapshot]:
        return self.view.open_orders(market, symbol)

    def positions(self) -> list[PositionSnapshot]:
        return [p for p in self.positions_view.values() if p.quantity != 0]

    def balances(self, market: Market) -> list[Balance]:
        return [b for (m, _), b in sorted(self.balances_view.items()) if m is market]

    # ==== futures account setup ===================================================================
    async def set_leverage(self, symbol: str, leverage: int) -> int:
        applied = await self.rest[Market.FUTURES].set_leverage(symbol, leverage)
        self.leverage[symbol] = applied
        return applied

    async def set_margin_type(self, symbol: str, margin_type: MarginType) -> None:
        await self.rest[Market.FUTURES].set_margin_type(symbol, margin_type)
        self.margin_types[symbol] = margin_type

    async def configure_futures(self, symbols: Iterable[str], leverage: int, margin_type: MarginType) -> None:
        """Leverage and margin type of every symbol the node will trade (before it trades)."""
        for symbol in symbols:
            await self.set_margin_type(symbol, margin_type)
            await self.set_leverage(symbol, leverage)

    # ==== reconciliation ==========================================================================
    async def reconcile_snapshot(self, orders: Iterable[OrderKey] = ()) -> VenueSnapshot:
        """The exchange's side for the reconciler: every open order, the given orders queried by
        client id (absent when the exchange does not know them), positions and balances — read now,
        and folded into the local view on the way."""
        open_orders: list[OrderSnapshot] = []
        balances: list[Balance] = []
        positions: list[PositionSnapshot] = []
        for market, rest in self.rest.items():
            for answer in await rest.open_orders():
                self._apply_answer(answer)
                open_orders.append(_exchange_view(answer))
            balances.extend(await rest.balances())
            if market is Market.FUTURES:
                positions.extend(await rest.positions(self.leverage, self.margin_types))
        queried: list[OrderSnapshot] = []
        for key in orders:
            found = await self._query_any(key)
            if found is not None:
                self._apply_answer(found)
                queried.append(_exchange_view(found))
        return VenueSnapshot(
            tuple(open_orders), tuple(queried), tuple(positions), tuple(balances), self.clock.timestamp_ns()
        )

    # ==== command tasks ===========================================================================
    def _schedule(self, key: OrderKey, action: Callable[[], Awaitable[None]]) -> None:
        previous = self._chains.get(key)

        async def run() -> None:
            if previous is not None and not previous.done():
                with contextlib.suppress(Exception):
                    await previous
            try:
                await action()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not lose the order silently: log and count
                self.counters.task_errors.append(f"{exc.__class__.__name__}: {exc}")
                log.exception("venue command failed", key=key)

        task = asyncio.get_running_loop().create_task(run())
        self._chains[key] = task
        self._track(task)
        task.add_done_callback(lambda done: self._chains.pop(key, None) if self._chains.get(key) is done else None)

    def _spawn(self, action: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await action
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.counters.task_errors.append(f"{exc.__class__.__name__}: {exc}")
                log.exception("venue background task failed")

        self._track(asyncio.get_running_loop().create_task(run()))

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _now(self) -> int:
        return self.clock.timestamp_ns()

    def _refuse_now(self, key: OrderKey, code: int | None, reason: str, request: OrderRequest | None) -> None:
        now = self._now()
        side = request.side if request is not None else None
        self.view.refuse(key, code, reason, now, now, *(() if side is None else (side,)))

    async def _submit(self, key: OrderKey, wire: WireRequest, duplicate: bool) -> None:
        rest = self.rest[key[0]]
        try:
            body = await rest.call(wire)
        except UnknownOutcome as error:
            self.counters.unknown_outcomes += 1
            self.view.mark_unknown(key, self._now())
            log.warning("order outcome unknown; resolving by query", key=key, error=str(error))
            await self._resolve_unknown(key)
            return
        except (InvalidOrderError, RateLimited, TemporaryError) as error:
            code = RATE_LIMITED_CODE if isinstance(error, RateLimited) else error_code(error)
            now = self._now()
            if duplicate:
                self.view.refuse(key, code, str(error), now, now)
            else:
                self.view.reject(key, code, str(error), now, now)
            return
        for answer in rest.parse_answer(wire.endpoint, body):
            self._apply_answer(answer)

    async def _submit_oco(self, key: OrderKey, request: OcoRequest) -> None:
        rest = self.rest[Market.SPOT]
        assert request.list_client_order_id is not None
        wire = wire_requests.new_oco(request, request.list_client_order_id)
        try:
            body = await rest.call(wire)
        except UnknownOutcome:
            self.counters.unknown_outcomes += 1
            legs = [(Market.SPOT, request.symbol, str(leg.client_order_id)) for leg in (request.above, request.below)]
            if not await self._resolve_legs(legs):
                now = self._now()
                self.view.refuse(
                    key, NEVER_PLACED_CODE, "OCO never placed (unknown outcome resolved by query)", now, now
                )
            return
        except (InvalidOrderError, RateLimited, TemporaryError) as error:
            code = RATE_LIMITED_CODE if isinstance(error, RateLimited) else error_code(error)
            now = self._now()
            self.view.refuse(key, code, str(error), now, now, request.side)
            return
        for answer in rest.parse_answer(wire.endpoint, body):
            self._apply_answer(answer)

    async def _cancel(self, key: OrderKey) -> None:
        market, symbol, client_id = key
        tracked = self.view.get(key)
        now = self._now()
        if tracked is not None and (
            tracked.snapshot.status.is_terminal or tracked.snapshot.status is OrderStatus.UNKNOWN
        ):
            self.view.refuse(key, *UNKNOWN_ORDER, now, now)  # finished (or never placed): nothing to cancel
            return
        if tracked is not None and tracked.algo and tracked.resulting_order_id is not None:
            wire = WireRequest("cancel_order", {"symbol": symbol, "orderId": tracked.resulting_order_id})
        else:
            wire = wire_requests.cancel_order(market, symbol, client_id, tracked is not None and tracked.algo)
        rest = self.rest.get(market)
        if rest is None:
            self.view.refuse(key, *UNKNOWN_ORDER, now, now)
            return
        try:
            body = await rest.call(wire)
        except UnknownOutcome:
            self.counters.unknown_outcomes += 1
            await self._refresh_until_known(key)
            return
        except (BinanceApiError, InvalidOrderError, RateLimited, TemporaryError) as error:
            code = RATE_LIMITED_CODE if isinstance(error, RateLimited) else error_code(error)
            if not isinstance(error, RateLimited | TemporaryError):
                await self._refresh(key)  # learn what happened to the order before reporting the refusal
            now = self._now()
            self.view.refuse(key, code, str(error), now, now)
            return
        answers = rest.parse_answer(wire.endpoint, body)
        if not answers:  # accepted without the order's state: read it
            await self._refresh(key)
        for answer in answers:
            if tracked is not None and tracked.algo and not answer.algo:
                answer = OrderAnswer(tracked.snapshot, (), True, answer.snapshot)
            self._apply_answer(answer)

    async def _modify(self, key: OrderKey, price: Decimal | None, quantity: Decimal | None) -> None:
        market, symbol, client_id = key
        tracked = self.view.get(key)
        now = self._now()
        if tracked is None or not tracked.snapshot.status.is_open or market not in self.rest:
            self.view.refuse(key, *UNKNOWN_ORDER, now, now)
            return
        current = tracked.snapshot
        if market is Market.FUTURES:
            new_price = price if price is not None else current.price
            new_quantity = quantity if quantity is not None else current.quantity
            if new_price is None:
                self.view.refuse(key, -1013, "Only LIMIT orders can be modified.", now, now)
                return
            wire = wire_requests.modify_order(market, symbol, client_id, current.side.value, new_price, new_quantity)
        else:
            if (price is not None and price != current.price) or quantity is None or quantity >= current.quantity:
                reason = "Binance spot can only lower an order's quantity in place (amend keepPriority)"
                self.view.refuse(key, -1013, reason, now, now)
                return
            wire = wire_requests.amend_quantity(symbol, client_id, quantity)
        rest = self.rest[market]
        try:
            body = await rest.call(wire)
        except UnknownOutcome:
            self.counters.unknown_outcomes += 1
            await self._refresh_until_known(key, ExecutionType.AMENDMENT)
            return
        except (BinanceApiError, InvalidOrderError, RateLimited, TemporaryError) as error:
            code = RATE_LIMITED_CODE if isinstance(error, RateLimited) else error_code(error)
            if not isinstance(error, RateLimited | TemporaryError):
                await self._refresh(key)
            now = self._now()
            self.view.refuse(key, code, str(error), now, now)
            return
        for answer in rest.parse_answer(wire.endpoint, body):
            self._apply_answer(answer, ExecutionType.AMENDMENT)

    # ==== applying REST answers ===================================================================
    def _apply_answer(self, answer: OrderAnswer, execution: ExecutionType | None = None) -> None:
        """Fills listed in the answer (each once), then the order's state."""
        snapshot = answer.snapshot
        ts_init = self._now()
        for fill in answer.fills:
            self.view.apply(OrderUpdate(self.account_id, snapshot, ExecutionType.TRADE, fill.ts_event, ts_init, fill))
        kind = execution or _execution_of(snapshot.status)
        self.view.apply(OrderUpdate(self.account_id, snapshot, kind, snapshot.ts_updated, ts_init), algo=answer.algo)
        if answer.resulting is not None:
            key = key_of(snapshot)
            self.view.link_resulting_order(key, answer.resulting.order_id)
            resulting = replace(answer.resulting, client_order_id=snapshot.client_order_id, triggered=True)
            self.view.apply(
                OrderUpdate(self.account_id, resulting, _execution_of(resulting.status), resulting.ts_updated, ts_init)
            )

    async def _query_any(self, key: OrderKey) -> OrderAnswer | None:
        """Query an order the view may not know (from the ledger): as a plain order, then on futures
        as an algo order; None when the exchange knows neither."""
        market, symbol, client_id = key
        tracked = self.view.get(key)
        kinds = [tracked.algo] if tracked is not None else ([False, True] if market is Market.FUTURES else [False])
        for algo in kinds:
            with contextlib.suppress(OrderNotFound):
                return await self.rest[market].query_order(symbol, client_id, algo)
        return None

    async def _query(self, key: OrderKey) -> OrderAnswer:
        market, symbol, client_id = key
        tracked = self.view.get(key)
        return await self.rest[market].query_order(symbol, client_id, tracked is not None and tracked.algo)

    async def _refresh(self, key: OrderKey) -> bool:
        """Read the order's state now (and its missing fills); False when the exchange does not know it."""
        try:
            answer = await self._query(key)
        except OrderNotFound:
            return False
        except (TemporaryError, BinanceApiError) as error:
            log.warning("order query failed", key=key, error=str(error))
            return True
        self._apply_answer(answer)
        await self._sync_fills(key)
        return True

    async def _refresh_until_known(self, key: OrderKey, execution: ExecutionType | None = None) -> None:
        """After a cancel / modify with an unknown outcome: query until the exchange answers."""
        delay = self.settings.resolve_initial_delay_s
        while not self._stopping:
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.resolve_max_delay_s)
            try:
                answer = await self._query(key)
            except OrderNotFound:
                return
            except (TemporaryError, BinanceApiError) as error:
                log.warning("order query failed; retrying", key=key, error=str(error))
                continue
            self._apply_answer(answer, execution)
            await self._sync_fills(key)
            return

    async def _resolve_unknown(self, key: OrderKey) -> None:
        """A submission whose outcome is unknown: query by client id until the exchange knows the order,
        or until it can no longer accept it (then it was never placed). Never resend."""
        deadline = self._now() + int(self.settings.unknown_deadline_s * 1e9)
        delay = self.settings.resolve_initial_delay_s
        while not self._stopping:
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.resolve_max_delay_s)
            tracked = self.view.get(key)
            if tracked is None or tracked.snapshot.status is not OrderStatus.UNKNOWN:
                self.counters.resolved_by_query += tracked is not None and tracked.snapshot.status.is_terminal is False
                return  # the user data stream told us first
            try:
                answer = await self._query(key)
            except OrderNotFound:
                if self._now() >= deadline:
                    self.counters.never_placed += 1
                    now = self._now()
                    self.view.reject(
                        key, NEVER_PLACED_CODE, "never placed (unknown outcome resolved by query)", now, now
                    )
                    return
                continue
            except (TemporaryError, BinanceApiError) as error:
                log.warning("order query failed; retrying", key=key, error=str(error))
                continue
            self.counters.resolved_by_query += 1
            self._apply_answer(answer)
            await self._sync_fills(key)
            return

    async def _resolve_legs(self, legs: list[OrderKey]) -> bool:
        deadline = self._now() + int(self.settings.unknown_deadline_s * 1e9)
        delay = self.settings.resolve_initial_delay_s
        while not self._stopping:
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.resolve_max_delay_s)
            if any(self.view.get(leg) is not None for leg in legs):
                return True
            found = False
            for leg in legs:
                with contextlib.suppress(OrderNotFound):
                    try:
                        answer = await self._query(leg)
                    except (TemporaryError, BinanceApiError):
                        continue
                    self._apply_answer(answer)
                    found = True
            if found:
                return True
            if self._now() >= deadline:
                return False
        return False

    # ==== fills from REST =========================================================================
    def _on_missing_fills(self, key: OrderKey) -> None:
        if key in self._fill_syncs or self._stopping:
            return
        self._fill_syncs.add(key)

        async def later() -> None:
            try:
                await asyncio.sleep(self.settings.fill_grace_s)  # the stream normally brings them
                await self._sync_fills(key)
            finally:
                self._fill_syncs.discard(key)

        self._spawn(later())

    async def _sync_fills(self, key: OrderKey) -> None:
        """Fetch the order's trades when a report claims fills we have not seen."""
        for attempt in range(self.settings.fill_sync_attempts):
            tracked = self.view.get(key)
            if tracked is None or not tracked.missing_fills:
                return
            order_id = tracked.resulting_order_id if tracked.algo else tracked.snapshot.order_id
            market, symbol, client_id = key
            if not order_id or self.trades_unavailable.get(market):
                self._synthesize(key)
                return
            try:
                fills = await self.rest[market].order_fills(symbol, order_id, ClientOrderId(client_id))
            except BinanceApiError as error:
                if error.http_status == 404:  # the venue serves no trade list (our simulator, so far)
                    log.warning("no trade list on this venue: fills derived from order totals", market=market.value)
                    self.trades_unavailable[market] = True
                    continue
                log.warning("trade list refused; retrying", key=key, error=str(error), attempt=attempt)
                await asyncio.sleep(self.settings.resolve_max_delay_s)
                continue
            except (TemporaryError, KestrelError) as error:
                log.warning("trade list failed; retrying", key=key, error=str(error), attempt=attempt)
                await asyncio.sleep(self.settings.resolve_max_delay_s)
                continue
            cumulative = Decimal(0)
            ts_init = self._now()
            before = tracked.filled
            for fill in fills:
                cumulative += fill.quantity
                self.view.apply_fill(key, fill, ts_init, cumulative)
            self.counters.fills_from_rest += tracked.filled != before
            if not tracked.missing_fills:
                return
            await asyncio.sleep(self.settings.resolve_initial_delay_s * 2**attempt)
        log.error("fills still missing after the trade list", key=key)

    def _synthesize(self, key: OrderKey) -> None:
        if self.view.synthesize_missing_fill(key, self._now()) is not None:
            self.counters.fills_from_rest += 1

    # ==== stream support ==========================================================================
    def _on_stream_connected(self, market: Market) -> None:
        if self.started and not self._stopping:
            self.counters.resyncs += 1
            self._spawn(self._resync(market))

    async def _resync(self, market: Market) -> None:
        """After a reconnect: what happened while no connection was up."""
        await self._poll(market, all_symbols=True)
        await self._refresh_account(market)

    async def _refresh_account(self, market: Market) -> None:
        rest = self.rest[market]
        try:
            balances = await rest.balances()
            positions = await rest.positions(self.leverage, self.margin_types) if market is Market.FUTURES else []
        except (TemporaryError, BinanceApiError) as error:
            log.warning("account refresh failed", market=market.value, error=str(error))
            return
        changed_balances = tuple(b for b in balances if self.balances_view.get((market, b.asset)) != b)
        changed_positions = tuple(p for p in positions if _position_changed(self.positions_view.get(p.symbol), p))
        for balance in changed_balances:
            self.balances_view[(market, balance.asset)] = balance
        for position in changed_positions:
            self.positions_view[position.symbol] = position
        if changed_balances or changed_positions:
            now = self._now()
            self._emit(
                AccountUpdate(
                    self.account_id, market, AccountUpdateReason.ORDER, changed_balances, changed_positions, now, now
                )
            )

    async def _poll(self, market: Market, all_symbols: bool = False) -> None:
        """Open orders by REST: every locally open order gets the exchange's state."""
        self.counters.polls += 1
        self._last_poll_ns[market] = self._now()
        rest = self.rest[market]
        local = [o for o in self.view.open_orders(market) if o.status is not OrderStatus.SUBMITTED]
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
            self._apply_answer(answer)
        for snapshot in local:
            key = key_of(snapshot)
            if key not in listed and snapshot.status is not OrderStatus.UNKNOWN:
                await self._refresh(key)  # no longer open: filled, cancelled or expired meanwhile
        for key in [key_of(o) for o in self.view.open_orders(market)]:
            tracked = self.view.get(key)
            if tracked is not None and tracked.missing_fills:
                await self._sync_fills(key)

    async def _watch(self) -> None:
        """Silence detection and the REST polling fallback (and the dispatcher's housekeeping)."""
        interval = min(1.0, self.settings.poll_interval_s / 2)
        silence_ns = int(self.settings.silence_s * 1e9)
        poll_ns = int(self.settings.poll_interval_s * 1e9)
        while not self._stopping:
            await asyncio.sleep(interval)
            now = self._now()
            self.dispatcher.flush_unlinked(now)
            for market, stream in self.streams.items():
                has_open = any(o.status is not OrderStatus.SUBMITTED for o in self.view.open_orders(market))
                last_heard = max(self.dispatcher.last_event_ns.get(market, 0), stream.counters.last_connect_ns)
                silent = not stream.connected or now - last_heard > silence_ns
                if has_open and silent:
                    if not self.polling[market]:
                        self.polling[market] = True
                        self.counters.poll_episodes += 1
                        log.warning("user data stream silent with open orders: polling by REST", market=market.value)
                    if now - self._last_poll_ns[market] >= poll_ns:
                        try:
                            await self._poll(market)
                        except Exception as exc:  # the watchdog must survive anything
                            log.exception("poll failed", market=market.value, error=str(exc))
                elif self.polling[market]:
                    self.polling[market] = False
                    log.info("user data stream back: polling stopped", market=market.value)

    # ==== events ==================================================================================
    def _emit(self, event: VenueEvent) -> None:
        self.counters.events += 1
        if self._handler is None:
            return
        try:
            self._handler(event)
        except Exception:  # the node's handler must not break the venue's bookkeeping
            self.counters.handler_errors += 1
            log.exception("venue event handler raised")


def _execution_of(status: OrderStatus) -> ExecutionType:
    return {
        OrderStatus.CANCELED: ExecutionType.CANCELED,
        OrderStatus.EXPIRED: ExecutionType.EXPIRED,
        OrderStatus.REJECTED: ExecutionType.REJECTED,
        OrderStatus.FILLED: ExecutionType.TRADE,
        OrderStatus.PARTIALLY_FILLED: ExecutionType.TRADE,
    }.get(status, ExecutionType.NEW)


def _exchange_view(answer: OrderAnswer) -> OrderSnapshot:
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


def _position_changed(old: PositionSnapshot | None, new: PositionSnapshot) -> bool:
    if old is None:
        return new.quantity != 0
    return (old.quantity, old.entry_price, old.margin_type) != (new.quantity, new.entry_price, new.margin_type)
