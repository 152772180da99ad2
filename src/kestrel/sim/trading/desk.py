"""`TradingDesk`: the simulator's trading half around THE matching engine.

It owns one `MatchingEngine` (the same class `SimVenue` and the backtester use: every fill comes from
the same code), the accounts, the order-count limits, the listenKeys and user-data listeners, and the
records the wire needs beyond the engine's snapshots (spot quote quantities and working times, OCO
list ids, futures algo orders). Every engine call returns the engine's events; `dispatch` turns them
into the exchange's user-data events for the account that owns them.

Time: the engine runs on the simulator's timeline (ns, no skew); everything a client sees is on the
server's clock (`to_ms`, skew included). Before any request is served the market is brought up to the
present (`sync`), so an order meets exactly the book the streams have shown so far.

Python API (tests, `sim.trading`): `credentials()`, `account_id(key)`, `engine`, `stats()`, and the
fault helpers `fail_next_orders`, `timeout_next_orders`, `silence_user_streams`, `expire_listen_keys`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from kestrel.binance.schemas.exchange_info import parse_instrument
from kestrel.core.enums import Market, OrderStatus, Side
from kestrel.core.logs import get_logger
from kestrel.core.orders import Fill
from kestrel.core.transfers import TransferDirection
from kestrel.core.venue import AccountUpdate, ExecutionType, OrderSnapshot, OrderUpdate
from kestrel.matching.base import EngineEvent, EngineSettings
from kestrel.matching.engine import MatchingEngine
from kestrel.matching.fees import FeeSchedule
from kestrel.sim.faults import FaultPlan, periodic_faults_due
from kestrel.sim.instruments import SymbolSpec
from kestrel.sim.state import SimulatorState
from kestrel.sim.trading import wire_futures, wire_spot
from kestrel.sim.trading.auth import Credentials
from kestrel.sim.trading.bridge import MarketBridge
from kestrel.sim.trading.limits import OrderRateLimiter
from kestrel.sim.trading.names import ZERO, Numbers
from kestrel.sim.trading.options import SimAccount, TradingOptions
from kestrel.sim.trading.user_streams import UserStreamHub
from kestrel.sim.trading.wire_futures import AlgoOrder
from kestrel.sim.trading.wire_spot import OrderExtras

if TYPE_CHECKING:
    from kestrel.sim.lockstep import LockstepSession

log = get_logger(__name__)
_HOUSEKEEPING_S = 0.05


@dataclass(slots=True)
class TradingCounters:
    """What the trading half did and injected (the `trading` section of `sim.stats()`)."""

    orders_placed: int = 0
    orders_rejected: int = 0
    cancels: int = 0
    fills: int = 0
    algo_orders_placed: int = 0
    oco_lists_placed: int = 0
    signature_failures: int = 0
    timestamp_failures: int = 0
    key_failures: int = 0
    order_rate_limited_429: int = 0
    user_events_sent: int = 0
    user_events_dropped: int = 0
    listen_keys_created: int = 0
    listen_keys_expired: int = 0
    order_5xx_placed_injected: int = 0
    order_5xx_unplaced_injected: int = 0
    order_timeouts_injected: int = 0
    transfers: int = 0
    silences_injected: int = 0
    listen_key_expiries_injected: int = 0


@dataclass(frozen=True, slots=True)
class TransferRecord:
    account: str
    transfer_id: int
    direction: TransferDirection
    asset: str
    amount: Decimal
    ts_ms: int


@dataclass(slots=True)
class OcoList:
    list_id: int
    list_client_id: str
    symbol: str
    account: str
    order_ids: list[int]
    done: bool = False


@dataclass(slots=True)
class PendingFault:
    kind: str  # "5xx_placed", "5xx_unplaced", "timeout"
    status: int = 503
    stall_s: float = 0.0


@dataclass(slots=True)
class _FaultQueue:
    manual: list[PendingFault] = field(default_factory=list)


class TradingDesk:
    def __init__(self, state: SimulatorState, options: TradingOptions) -> None:
        self.state = state
        self.options = options
        self.counters = TradingCounters()
        self.specs: dict[tuple[Market, str], SymbolSpec] = {}
        instruments = []
        for market in state.options.markets:
            for spec in state.source.specs(market):
                self.specs[(market, spec.symbol)] = spec
                instruments.append(parse_instrument(spec.entry, market))
        self._numbers = {key: Numbers(spec) for key, spec in self.specs.items()}
        settings = EngineSettings(
            queue_model=options.queue_model,
            book_window_ticks=options.book_window_ticks,
            default_leverage=options.default_leverage,
        )
        self.engine = MatchingEngine(instruments, settings)
        self.accounts = options.resolved_accounts(state.options.seed)
        for account in self.accounts:
            self.engine.open_account(
                account.name,
                spot_balances=account.spot,
                futures_balances=account.futures,
                fees=FeeSchedule(account.spot_fee_tier, account.futures_fee_tier),
            )
        self.credentials = Credentials(self.accounts)
        self.limiter = OrderRateLimiter(options.order_limits)
        self.streams = UserStreamHub(
            state.options.seed,
            state.options.scaled(options.listen_key_validity_s),
            state.timeline.monotonic_s,
            state.server_time_ms,
            self.counters,
        )
        self.bridge = MarketBridge(self.engine, state.source, self.dispatch)
        observers = getattr(state.source, "observers", None)
        if isinstance(observers, list):
            observers.append(self.bridge)
        else:  # a source that cannot report its book would leave the engine's books empty
            log.warning("market source reports no book changes: orders will only meet the books at activation")
        self.extras: dict[int, OrderExtras] = {}
        self.algos: dict[int, AlgoOrder] = {}
        self.algo_of_order: dict[int, int] = {}
        self._algo_ids = itertools.count(1_000_001)
        self.lists: dict[int, OcoList] = {}
        self.transfers: list[TransferRecord] = []  # wallet transfers, oldest first (the history endpoint)
        self._transfer_faults: list[str] = []
        self._execution_ids = itertools.count(1)
        self.last_execution_id = 0
        self.trades: dict[tuple[str, Market], list[tuple[Fill, OrderSnapshot]]] = {}  # myTrades / userTrades
        self._finished: list[tuple[AlgoOrder, OrderSnapshot]] = []
        self._faults = _FaultQueue()
        self._fault_rng = random.Random(f"faults:trading:{state.options.seed}")
        self._task: asyncio.Task[None] | None = None
        self.lockstep: LockstepSession | None = None

    # ---- clock and market ------------------------------------------------------------------------
    def now_ns(self) -> int:
        return self.state.timeline.now_ns()

    def to_ms(self, ts_ns: int) -> int:
        return self.state.timeline.server_ms(ts_ns)

    def sync(self) -> int:
        """Bring the market (and so the engine) up to now; returns now (engine ns). In lockstep the
        step loop alone moves the market (`kestrel.sim.lockstep`)."""
        now = self.now_ns()
        if self.lockstep is None:
            self.state.source.advance(now)
        return now

    def activate(self, market: Market, symbol: str, ts: int) -> None:
        if self.lockstep is None:  # lockstep: the engine runs on the plan's table from the start
            self.bridge.activate(market, symbol, ts)

    def use_lockstep(self, session: LockstepSession) -> None:
        """Serve orders through a lockstep session: its engine (on the backtest's table) replaces ours."""
        self.lockstep = session
        self.engine = session.engine

    def numbers(self, market: Market, symbol: str) -> Numbers:
        return self._numbers[(market, symbol)]

    def has_symbol(self, market: Market, symbol: str) -> bool:
        return (market, symbol) in self.specs

    # ---- accounts --------------------------------------------------------------------------------
    def credentials_list(self) -> list[dict[str, str]]:
        """Name, key and secret of every account (the start-up line; local use only)."""
        return [{"name": a.name, "api_key": a.api_key, "api_secret": a.api_secret} for a in self.accounts]

    def account(self, name: str) -> SimAccount:
        return next(a for a in self.accounts if a.name == name)

    def account_id(self, api_key: str) -> str:
        account = self.credentials.by_key(api_key)
        if account is None:
            raise KeyError(api_key)
        return account.name

    # ---- engine events → user data ---------------------------------------------------------------
    def dispatch(self, events: list[EngineEvent]) -> None:
        touched_lists: set[int] = set()
        self._finished = []
        for event in events:
            if isinstance(event, OrderUpdate) and event.fill is not None:
                self.trades.setdefault((event.account_id, event.order.market), []).append((event.fill, event.order))
            if isinstance(event, OrderUpdate):
                if event.order.market is Market.SPOT:
                    self._spot_order_event(event)
                    if event.order.order_list_id >= 0:
                        touched_lists.add(event.order.order_list_id)
                else:
                    self._futures_order_event(event)
            else:
                self._account_event(event)
        for list_id in sorted(touched_lists):
            self._check_list_done(list_id)
        for algo, order in self._finished:
            numbers = self.numbers(Market.FUTURES, order.symbol)
            finished = wire_futures.algo_update(algo, order, numbers, self.to_ms, algo.ts_updated)
            self.streams.publish(self.engine.orders[order.order_id].account_id, Market.FUTURES, finished)
        self._finished = []

    def extras_of(self, order_id: int) -> OrderExtras:
        extras = self.extras.get(order_id)
        if extras is None:
            extras = self.extras[order_id] = OrderExtras()
        return extras

    def _spot_order_event(self, update: OrderUpdate) -> None:
        order = update.order
        extras = self.extras_of(order.order_id)
        if update.execution_type is ExecutionType.TRIGGERED or (
            update.execution_type is ExecutionType.NEW and not order.order_type.is_conditional
        ):
            extras.working_ns = update.ts_event
        if update.fill is not None:
            self.counters.fills += 1
            self.limiter.on_fill(update.account_id, Market.SPOT, order.order_id, self.to_ms(update.ts_event))
        numbers = self.numbers(Market.SPOT, order.symbol)
        self.last_execution_id = next(self._execution_ids)
        event = wire_spot.execution_report(update, numbers, extras, self.last_execution_id, self.to_ms)
        self.streams.publish(update.account_id, Market.SPOT, event)

    def _futures_order_event(self, update: OrderUpdate) -> None:
        order = update.order
        numbers = self.numbers(Market.FUTURES, order.symbol)
        if update.fill is not None:
            self.counters.fills += 1
        algo_id = self.algo_of_order.get(order.order_id)
        algo = self.algos.get(algo_id) if algo_id is not None else None
        account = update.account_id
        ts = update.ts_event
        if algo is not None and not algo.ts_triggered:
            execution = update.execution_type
            if execution is ExecutionType.TRIGGERED:
                algo.ts_triggered = algo.ts_updated = ts
                for status in ("TRIGGERING", "TRIGGERED"):
                    algo.status = status
                    self.streams.publish(
                        account, Market.FUTURES, wire_futures.algo_update(algo, order, numbers, self.to_ms, ts)
                    )
                placed = OrderUpdate(account, order, ExecutionType.NEW, ts, ts)
                self._order_trade_update(placed)
            elif execution is not ExecutionType.NEW:
                algo.status = "CANCELED" if order.status is OrderStatus.CANCELED else "EXPIRED"
                algo.ts_updated = ts
                self.streams.publish(
                    account, Market.FUTURES, wire_futures.algo_update(algo, order, numbers, self.to_ms, ts)
                )
            else:
                self.streams.publish(
                    account, Market.FUTURES, wire_futures.algo_update(algo, order, numbers, self.to_ms, ts)
                )
            return
        self._order_trade_update(update)
        if algo is not None and not order.status.is_open and algo.status == "TRIGGERED":
            algo.status = "FINISHED"
            algo.ts_updated = ts
            # after the order's ACCOUNT_UPDATE: the Algo Service learns the outcome from the engine
            self._finished.append((algo, order))

    def _order_trade_update(self, update: OrderUpdate) -> None:
        order = update.order
        numbers = self.numbers(Market.FUTURES, order.symbol)
        notional = self.open_notional(update.account_id, order.symbol)
        event = wire_futures.order_trade_update(update, numbers, self.to_ms, notional)
        self.streams.publish(update.account_id, Market.FUTURES, event)

    def _account_event(self, update: AccountUpdate) -> None:
        if update.market is Market.SPOT:
            self.streams.publish(update.account_id, Market.SPOT, wire_spot.account_position(update, self.to_ms))
            return
        futures = self.engine.account(update.account_id).futures
        cross = {b.asset: futures.cross_wallet(b.asset) for b in update.balances}
        event = wire_futures.account_update(update, cross, self.to_ms)
        self.streams.publish(update.account_id, Market.FUTURES, event)

    def _check_list_done(self, list_id: int) -> None:
        oco = self.lists.get(list_id)
        if oco is None or oco.done:
            return
        orders = [self.engine.orders[order_id] for order_id in oco.order_ids if order_id in self.engine.orders]
        if any(order.is_open for order in orders):
            return
        oco.done = True
        event = wire_spot.list_status(
            oco.symbol,
            oco.list_id,
            oco.list_client_id,
            [(o.order_id, o.client_order_id) for o in orders],
            True,
            self.to_ms(self.engine.now_ns),
        )
        self.streams.publish(oco.account, Market.SPOT, event)

    # ---- queries the wire needs ------------------------------------------------------------------
    def is_hidden(self, order: OrderSnapshot) -> bool:
        """An untriggered (or never triggered) futures algo order is not a regular order."""
        algo_id = self.algo_of_order.get(order.order_id)
        return algo_id is not None and not self.algos[algo_id].ts_triggered

    def open_notional(self, account: str, symbol: str) -> tuple[Decimal, Decimal]:
        """(bids, asks) notional of the account's working USD-M orders on `symbol`."""
        bids = asks = ZERO
        for order in self.engine.open_orders(account, Market.FUTURES, symbol):
            if self.is_hidden(order) or order.price is None:
                continue
            notional = order.price * order.leaves_quantity
            if order.side is Side.BUY:
                bids += notional
            else:
                asks += notional
        return bids, asks

    def asset_states(self, account: str) -> list[wire_futures.AssetState]:
        futures = self.engine.account(account).futures
        states = []
        for asset in futures.assets():
            positions = [p for p in futures.positions.values() if p.margin_asset == asset and p.quantity != 0]
            cross = [p for p in positions if p.margin_type.value == "CROSSED"]
            order_margin = sum(
                (m for symbol, m in futures.order_margin.items() if futures.positions_asset(symbol) == asset),
                start=ZERO,
            )
            states.append(
                wire_futures.AssetState(
                    asset=asset,
                    wallet=futures.wallet(asset),
                    cross_wallet=futures.cross_wallet(asset),
                    cross_unrealized=sum((futures.unrealized_pnl(p) for p in cross), start=ZERO),
                    unrealized=sum((futures.unrealized_pnl(p) for p in positions), start=ZERO),
                    available=max(ZERO, futures.available(asset)),
                    position_margin=sum((futures.initial_margin(p) for p in positions), start=ZERO),
                    order_margin=order_margin,
                    maintenance=sum((futures.maintenance_margin(p) for p in positions), start=ZERO),
                )
            )
        return states

    # ---- algo and OCO records ----------------------------------------------------------------------
    def register_algo(self, order: OrderSnapshot, ts: int) -> AlgoOrder:
        algo = AlgoOrder(
            algo_id=next(self._algo_ids),
            client_algo_id=order.client_order_id,
            order_id=order.order_id,
            symbol=order.symbol,
            ts_created=ts,
            ts_updated=ts,
        )
        self.algos[algo.algo_id] = algo
        self.algo_of_order[order.order_id] = algo.algo_id
        return algo

    def register_list(
        self, list_id: int, list_client_id: str, symbol: str, account: str, order_ids: list[int]
    ) -> OcoList:
        oco = OcoList(list_id, list_client_id, symbol, account, order_ids)
        self.lists[list_id] = oco
        for order_id in order_ids:
            self.extras_of(order_id).list_client_id = list_client_id
        return oco

    # ---- faults ------------------------------------------------------------------------------------
    @property
    def plan(self) -> FaultPlan:
        return self.state.faults.plan

    def fail_next_transfers(self, count: int = 1, placed: bool = True) -> None:
        """The next `count` wallet transfers answer 5xx after (or instead of) moving the money."""
        self._transfer_faults.extend(["5xx_placed" if placed else "5xx_unplaced"] * count)

    def transfer_fault(self) -> str | None:
        return self._transfer_faults.pop(0) if self._transfer_faults else None

    def fail_next_orders(self, count: int = 1, placed: bool = True, status: int = 503) -> None:
        """The next `count` order requests answer `status` (5xx) after (or instead of) placing the order."""
        kind = "5xx_placed" if placed else "5xx_unplaced"
        self._faults.manual.extend(PendingFault(kind, status) for _ in range(count))

    def timeout_next_orders(self, count: int = 1, stall_s: float = 5.0) -> None:
        """The next `count` order requests are placed, then stall `stall_s` and the connection closes."""
        self._faults.manual.extend(PendingFault("timeout", stall_s=stall_s) for _ in range(count))

    def silence_user_streams(self, seconds: float) -> None:
        self.streams.silence(seconds)
        self.counters.silences_injected += 1

    def expire_listen_keys(self) -> int:
        count = self.streams.expire_all()
        self.counters.listen_key_expiries_injected += count
        return count

    def order_fault(self) -> PendingFault | None:
        """The fault (if any) for one order request: a manual one first, then the plan's rates."""
        if self._faults.manual:
            return self._faults.manual.pop(0)
        plan = self.plan
        total = plan.order_5xx_placed_rate + plan.order_5xx_unplaced_rate + plan.order_timeout_rate
        if total <= 0:
            return None
        draw = self._fault_rng.random()
        if draw < plan.order_5xx_placed_rate:
            return PendingFault("5xx_placed", plan.rest_5xx_status)
        draw -= plan.order_5xx_placed_rate
        if draw < plan.order_5xx_unplaced_rate:
            return PendingFault("5xx_unplaced", plan.rest_5xx_status)
        draw -= plan.order_5xx_unplaced_rate
        if draw < plan.order_timeout_rate:
            return PendingFault("timeout", stall_s=plan.order_timeout_stall_s)
        return None

    # ---- life cycle --------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._housekeeping(), name="sim-trading")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _housekeeping(self) -> None:
        """Time-driven work: GTD expiry and funding with no market event, listenKey expiry, the
        plan's periodic user-stream faults."""
        last: dict[str, float] = {}
        timeline = self.state.timeline
        while True:
            await asyncio.sleep(_HOUSEKEEPING_S)
            try:
                if self.bridge.has_active:  # idle (nothing traded yet): leave the market to its pump
                    events = self.engine.advance_time(self.sync())
                    if events:
                        self.dispatch(events)
                if self.streams.keys:
                    self.streams.expire_due()
                plan = self.plan
                periods = {"silence": plan.user_stream_silence_every_s, "expire": plan.listen_key_expire_every_s}
                for name in periodic_faults_due(last, periods, timeline.monotonic_s()):
                    if name == "silence":
                        self.silence_user_streams(plan.user_stream_silence_s)
                    else:
                        self.expire_listen_keys()
            except Exception:  # the loop must survive; the error is logged
                log.exception("trading housekeeping failed")

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = asdict(self.counters)
        data["active_symbols"] = self.bridge.active_symbols
        data["market_events_applied"] = self.bridge.events_applied
        data["accounts"] = [a.name for a in self.accounts]
        return data
