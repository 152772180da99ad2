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
import functools
import itertools
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from kestrel.binance.http.breaker import CircuitBreaker
from kestrel.binance.http.client import BinanceApiError, BinanceHttpClient, UnknownOutcome, with_retries
from kestrel.binance.http.ratelimit import RateLimitTracker
from kestrel.binance.http.shared_budget import SharedBudget, budget_scopes
from kestrel.binance.order_view import OrderKey, OrderView, key_of
from kestrel.binance.schemas import trading as wire_requests
from kestrel.binance.schemas.trading import WireRequest, is_algo_order
from kestrel.binance.userdata import ListenKeyStream, UserStream, WsApiUserStream
from kestrel.binance.venue_recovery import NEVER_PLACED_CODE, Recovery, exchange_view
from kestrel.binance.venue_rest import MarketRest, OrderAnswer, error_code
from kestrel.binance.venue_settings import BinanceVenueSettings, VenueSnapshot
from kestrel.binance.venue_stream import StreamDispatcher
from kestrel.core.clock import Clock
from kestrel.core.enums import MarginType, Market, OrderStatus
from kestrel.core.errors import ConfigurationError, InvalidOrderError, RateLimited, TemporaryError
from kestrel.core.identifiers import ClientOrderId, IntentId, client_order_id
from kestrel.core.logs import get_logger
from kestrel.core.venue import (
    Balance,
    ExecutionType,
    OcoRequest,
    OrderRequest,
    OrderSnapshot,
    PositionSnapshot,
    VenueEvent,
    VenueEventHandler,
)

log = get_logger(__name__)

RATE_LIMITED_CODE = -1003
READ_RETRY_DELAY_S = 0.2  # first back-off of start-up and reconciliation reads (doubles, full jitter)
UNKNOWN_ORDER = (-2011, "Unknown order sent.")


@dataclass
class VenueCounters:
    events: int = 0
    commands: int = 0
    unknown_outcomes: int = 0
    resolved_by_query: int = 0
    resolved_by_stream: int = 0  # the user data stream told us before a query did
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
        self.recovery = Recovery(self)
        self.view = OrderView(self.account_id, self.emit, self.recovery.on_missing_fills)
        self.balances_view: dict[tuple[Market, str], Balance] = {}
        self.positions_view: dict[str, PositionSnapshot] = {}
        self.leverage: dict[str, int] = {}
        self.margin_types: dict[str, MarginType] = {}
        self.streams: dict[Market, UserStream] = {}
        self.dispatcher = StreamDispatcher(self)
        self.polling: dict[Market, bool] = dict.fromkeys(settings.markets, False)
        self.trades_unavailable: dict[Market, bool] = {}
        self.last_poll_ns: dict[Market, int] = dict.fromkeys(settings.markets, 0)
        self._ids = itertools.count(1)
        self._session_tag = f"{settings.client_id_tag}{clock.timestamp_ns()}"
        self._chains: dict[OrderKey, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stream_tasks: list[asyncio.Task[None]] = []
        self.fill_syncs: set[OrderKey] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._buffer: list[tuple[Market, bytes, int]] | None = None
        self.started = False
        self.stopping = False

    def _make_http(self, market: Market) -> BinanceHttpClient:
        settings = self.settings
        spot = market is Market.SPOT
        safety = settings.rate_limit_safety
        limits = (
            RateLimitTracker.spot_defaults(settings.spot_weight_per_minute, safety)
            if spot
            else RateLimitTracker.futures_defaults(settings.futures_weight_per_minute, safety)
        )
        shared = None
        rest_url = settings.spot_rest_url if spot else settings.futures_rest_url
        if settings.shared_budget_redis_url:
            scopes = budget_scopes(rest_url, settings.api_key, market.value)
            shared = SharedBudget(settings.shared_budget_redis_url, scopes, limits)
        return BinanceHttpClient(
            rest_url,
            self.clock,
            settings.api_key,
            settings.api_secret,
            settings.recv_window_ms,
            settings.request_timeout_ms,
            limits,
            CircuitBreaker(),
            shared,
        )

    # ==== lifecycle ===============================================================================
    async def start(self) -> None:
        """Measure the clock offset, open the user streams, rebuild the view, start the watchdog."""
        if not self.settings.api_key or not self.settings.api_secret:
            raise ConfigurationError("BinanceVenue needs venue.api_key and venue.api_secret (from env/.env)")
        self._buffer = []
        for market, rest in self.rest.items():
            offset = await with_retries(rest.sync_time, base_delay_s=READ_RETRY_DELAY_S)
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
        await with_retries(self._rebuild, base_delay_s=READ_RETRY_DELAY_S)
        buffered, self._buffer = self._buffer, None
        for market, data, ts_init in buffered:
            self.dispatcher.on_frame(market, data, ts_init)
        self._watcher = asyncio.get_running_loop().create_task(self.recovery.watch())
        self.started = True
        log.info(
            "binance venue started", markets=[m.value for m in self.settings.markets], orders=len(self.view.orders)
        )

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Let in-flight commands finish (or resolve), then close streams and sessions."""
        self.stopping = True
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
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

    @property
    def busy(self) -> int:
        """Commands and background tasks (resolutions, fill reads, polls) still running."""
        return sum(not task.done() for task in self._tasks)

    async def drain(self, timeout_s: float | None = None) -> bool:
        """Wait until every command sent so far has its answer (tests, orderly shutdown); False when
        some are still running after `timeout_s`. Never cancels them: an order whose outcome is still
        being resolved must go on being resolved (or be left to `stop`, and to the reconciler)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while pending := [t for t in self._tasks if not t.done()]:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                log.warning("venue commands still running", pending=len(pending), waited_s=timeout_s)
                return False
            await asyncio.wait(pending, timeout=remaining)
        return True

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
                self.recovery.on_stream_connected, settings.user_stream, server_offset_ms=lambda: http.server_offset_ms,
            )  # fmt: skip
        rest = self.rest[market]
        ws_base = settings.spot_ws_url if market is Market.SPOT else settings.futures_ws_url
        return ListenKeyStream(
            market, self.clock, rest.http, rest.endpoints, ws_base, on_frame, self.recovery.on_stream_connected,
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
        delay = READ_RETRY_DELAY_S  # reads: a 429 or a 5xx on the way is waited out, not fatal
        for market, rest in self.rest.items():
            for answer in await with_retries(rest.open_orders, base_delay_s=delay):
                self.recovery.apply_answer(answer)
                open_orders.append(exchange_view(answer))
            balances.extend(await with_retries(rest.balances, base_delay_s=delay))
            if market is Market.FUTURES:
                read = functools.partial(rest.positions, self.leverage, self.margin_types)
                positions.extend(await with_retries(read, base_delay_s=delay))
        queried: list[OrderSnapshot] = []
        for key in orders:
            found = await with_retries(functools.partial(self.recovery.query_any, key), base_delay_s=delay)
            if found is not None:
                self.recovery.apply_answer(found)
                queried.append(exchange_view(found))
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

    def spawn(self, action: Awaitable[None]) -> None:
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

    def now_ns(self) -> int:
        return self.clock.timestamp_ns()

    def _refuse_now(self, key: OrderKey, code: int | None, reason: str, request: OrderRequest | None) -> None:
        now = self.now_ns()
        side = request.side if request is not None else None
        self.view.refuse(key, code, reason, now, now, *(() if side is None else (side,)))

    async def _submit(self, key: OrderKey, wire: WireRequest, duplicate: bool) -> None:
        rest = self.rest[key[0]]
        try:
            body = await rest.call(wire)
        except UnknownOutcome as error:
            self.counters.unknown_outcomes += 1
            self.view.mark_unknown(key, self.now_ns())
            log.warning("order outcome unknown; resolving by query", key=key, error=str(error))
            await self.recovery.resolve_unknown(key)
            return
        except (InvalidOrderError, RateLimited, TemporaryError) as error:
            code = RATE_LIMITED_CODE if isinstance(error, RateLimited) else error_code(error)
            now = self.now_ns()
            if duplicate:
                self.view.refuse(key, code, str(error), now, now)
            else:
                self.view.reject(key, code, str(error), now, now)
            return
        except Exception as error:  # a bug, or an answer we cannot read: the order may exist
            await self._lost_answer(key, duplicate, error)
            return
        try:
            answers = rest.parse_answer(wire.endpoint, body)
        except Exception as error:
            await self._lost_answer(key, duplicate, error)
            return
        for answer in answers:
            self.recovery.apply_answer(answer)

    async def _lost_answer(self, key: OrderKey, duplicate: bool, error: Exception) -> None:
        """A submission failed in a way no rule covers: never leave the order in limbo — its outcome is
        unknown, so it is resolved by query like a 5xx (found ⇒ its state; not found ⇒ never placed)."""
        self.counters.task_errors.append(f"{error.__class__.__name__}: {error}")
        log.error("order submission failed unexpectedly; resolving by query", key=key, error=repr(error))
        if duplicate:  # the order the client id names is tracked already; only this request failed
            now = self.now_ns()
            self.view.refuse(key, None, f"request failed: {error}", now, now)
            return
        self.counters.unknown_outcomes += 1
        self.view.mark_unknown(key, self.now_ns())
        await self.recovery.resolve_unknown(key)

    async def _submit_oco(self, key: OrderKey, request: OcoRequest) -> None:
        rest = self.rest[Market.SPOT]
        assert request.list_client_order_id is not None
        wire = wire_requests.new_oco(request, request.list_client_order_id)
        try:
            body = await rest.call(wire)
        except UnknownOutcome:
            self.counters.unknown_outcomes += 1
            legs = [(Market.SPOT, request.symbol, str(leg.client_order_id)) for leg in (request.above, request.below)]
            if not await self.recovery.resolve_legs(legs):
                now = self.now_ns()
                self.view.refuse(
                    key, NEVER_PLACED_CODE, "OCO never placed (unknown outcome resolved by query)", now, now
                )
            return
        except (InvalidOrderError, RateLimited, TemporaryError) as error:
            code = RATE_LIMITED_CODE if isinstance(error, RateLimited) else error_code(error)
            now = self.now_ns()
            self.view.refuse(key, code, str(error), now, now, request.side)
            return
        for answer in rest.parse_answer(wire.endpoint, body):
            self.recovery.apply_answer(answer)

    async def _cancel(self, key: OrderKey) -> None:
        market, symbol, client_id = key
        tracked = self.view.get(key)
        now = self.now_ns()
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
            await self.recovery.refresh_until_known(key)
            return
        except (BinanceApiError, InvalidOrderError, RateLimited, TemporaryError) as error:
            code = RATE_LIMITED_CODE if isinstance(error, RateLimited) else error_code(error)
            if not isinstance(error, RateLimited | TemporaryError):
                await self.recovery.refresh(key)  # learn what happened to the order before reporting the refusal
            now = self.now_ns()
            self.view.refuse(key, code, str(error), now, now)
            return
        answers = rest.parse_answer(wire.endpoint, body)
        if not answers:  # accepted without the order's state: read it
            await self.recovery.refresh(key)
        for answer in answers:
            if tracked is not None and tracked.algo and not answer.algo:
                answer = OrderAnswer(tracked.snapshot, (), True, answer.snapshot)
            self.recovery.apply_answer(answer)

    async def _modify(self, key: OrderKey, price: Decimal | None, quantity: Decimal | None) -> None:
        market, symbol, client_id = key
        tracked = self.view.get(key)
        now = self.now_ns()
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
            await self.recovery.refresh_until_known(key, ExecutionType.AMENDMENT)
            return
        except (BinanceApiError, InvalidOrderError, RateLimited, TemporaryError) as error:
            code = RATE_LIMITED_CODE if isinstance(error, RateLimited) else error_code(error)
            if not isinstance(error, RateLimited | TemporaryError):
                await self.recovery.refresh(key)
            now = self.now_ns()
            self.view.refuse(key, code, str(error), now, now)
            return
        for answer in rest.parse_answer(wire.endpoint, body):
            self.recovery.apply_answer(answer, ExecutionType.AMENDMENT)

    # ==== events ==================================================================================
    def emit(self, event: VenueEvent) -> None:
        self.counters.events += 1
        if self._handler is None:
            return
        try:
            self._handler(event)
        except Exception:  # the node's handler must not break the venue's bookkeeping
            self.counters.handler_errors += 1
            log.exception("venue event handler raised")
