"""The matching engine's foundation: settings, accounts, kernel plumbing and shared helpers.

`MatchingEngine` (engine.py) is this class plus order execution (execution.py), futures events
(futures.py) and order entry (engine.py); the split only keeps files small.

THE matching engine: one pure, synchronous, deterministic exchange for backtest, paper and simulator.

No I/O and no clock: every call carries its exchange time `ts` (int ns) and returns plain data
(`OrderUpdate`, `AccountUpdate`) that a backtest delivers to a strategy and the simulator server
translates to Binance responses and user-data events. Two ways to feed market data, same code inside:

- per event: `apply(event)` (the simulator: one recorded or synthetic event at a time);
- in batches: `load(table)` then `run_until(ts)` (backtests: the compiled kernel runs until something
  needs Python: a fill, a trigger, a Python event such as a mark price, or the stop time).

The fill rules are written down in docs/matching.md.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from kestrel.core.enums import LiquiditySide, MarginType, Market, OrderStatus
from kestrel.core.errors import ConfigurationError, InsufficientFunds, InvalidOrderError
from kestrel.core.events import FundingRate, MarketEvent, MarkPrice
from kestrel.core.identifiers import ClientOrderId, TradeId, VenueOrderId
from kestrel.core.instrument import Instrument
from kestrel.core.orders import Fill
from kestrel.core.transfers import TransferDirection
from kestrel.core.venue import AccountUpdate, AccountUpdateReason, ExecutionType, OrderUpdate, PositionSnapshot
from kestrel.matching import kernel as k
from kestrel.matching.accounts import FuturesAccount, SpotAccount
from kestrel.matching.fees import FeeSchedule
from kestrel.matching.margin import BracketRegistry
from kestrel.matching.orders import EXPIRED_IOC, SimOrder
from kestrel.matching.rows import EventTable, TableBuilder
from kestrel.matching.state import KernelBookView, KernelState

ZERO = Decimal(0)
EngineEvent = OrderUpdate | AccountUpdate
QUEUE_MODELS = {"risk_averse": k.QUEUE_RISK_AVERSE, "power": k.QUEUE_POWER, "log": k.QUEUE_LOG}


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """Rules of one engine. `fees` is the default schedule of new accounts."""

    fees: FeeSchedule = field(default_factory=FeeSchedule)
    brackets: BracketRegistry = field(default_factory=BracketRegistry)
    queue_model: str = "power"
    queue_power: float = 2.0
    book_window_ticks: int = 1 << 18
    default_leverage: int = 20
    default_margin_type: MarginType = MarginType.CROSSED
    liquidation_fee_rate: Decimal = Decimal("0.0125")
    funding_interval_hours: int = 8
    bar_market_reserve: Decimal = Decimal("0.1")

    def __post_init__(self) -> None:
        if self.queue_model not in QUEUE_MODELS:
            raise ConfigurationError(f"unknown queue model {self.queue_model!r}; use {', '.join(QUEUE_MODELS)}")
        if self.queue_power <= 0:
            raise ConfigurationError("queue_power must be positive")


@dataclass(slots=True)
class _Account:
    account_id: str
    spot: SpotAccount
    futures: FuturesAccount
    fees: FeeSchedule
    open_by_client: dict[tuple[Market, str, str], SimOrder] = field(default_factory=dict)


class EngineBase(ABC):
    """See the module docstring. Instruments are fixed at construction (their index is the kernel's)."""

    def __init__(
        self,
        instruments: Sequence[Instrument],
        settings: EngineSettings | None = None,
        bar_symbols: Iterable[tuple[Market, str]] = (),
    ) -> None:
        self.settings = settings or EngineSettings()
        self.instruments = list(instruments)
        self._index: dict[tuple[Market, str], int] = {
            (i.market, str(i.symbol)): n for n, i in enumerate(self.instruments)
        }
        if len(self._index) != len(self.instruments):
            raise ConfigurationError("an instrument is listed twice")
        self.state = KernelState(
            self.instruments,
            self.settings.book_window_ticks,
            QUEUE_MODELS[self.settings.queue_model],
            self.settings.queue_power,
        )
        for market, symbol in bar_symbols:
            self.state.sym_state[self.symbol_index(market, symbol), k.S_BAR_MODE] = 1
        self._bar_symbols = set(bar_symbols)
        self.accounts: dict[str, _Account] = {}
        self.orders: dict[int, SimOrder] = {}
        self._slot_orders: dict[int, SimOrder] = {}
        self._lists: dict[int, list[SimOrder]] = {}
        self._marks: dict[str, Decimal] = {}
        self._last_tick_price: dict[int, tuple[int, Decimal]] = {}
        self._funding: dict[str, tuple[int, Decimal]] = {}  # symbol -> (next funding ns, predicted rate)
        self._settled_funding: dict[str, int] = {}
        self._gtd_orders: set[SimOrder] = set()
        self._next_order_id = 1
        self._next_trade_id = 1
        self._next_list_id = 1
        self._outbox: list[EngineEvent] = []
        self.now_ns = 0
        self._table: EventTable | None = None
        self.run_kernel: Callable[..., int] = k.run
        self._live_builder = TableBuilder(self.instruments, require_snapshot=False, bar_symbols=bar_symbols)
        self.liquidations = 0
        self.funding_payments: list[tuple[int, str, str, Decimal]] = []  # (ts, account, symbol, amount)

    # ==== setup ===================================================================================
    def symbol_index(self, market: Market, symbol: str) -> int:
        try:
            return self._index[(market, symbol)]
        except KeyError:
            raise InvalidOrderError("Invalid symbol.", -1121) from None

    def has_instrument(self, market: Market, symbol: str) -> bool:
        return (market, symbol) in self._index

    def instrument(self, market: Market, symbol: str) -> Instrument:
        return self.instruments[self.symbol_index(market, symbol)]

    def open_account(
        self,
        account_id: str,
        spot_balances: Mapping[str, Decimal] | None = None,
        futures_balances: Mapping[str, Decimal] | None = None,
        fees: FeeSchedule | None = None,
    ) -> None:
        if account_id in self.accounts:
            raise ConfigurationError(f"account {account_id!r} exists already")
        futures = FuturesAccount(
            futures_balances,
            self.settings.brackets,
            self.mark_price,
            self.settings.default_leverage,
            self.settings.default_margin_type,
        )
        self.accounts[account_id] = _Account(
            account_id, SpotAccount(spot_balances), futures, fees or self.settings.fees
        )

    def account(self, account_id: str) -> _Account:
        try:
            return self.accounts[account_id]
        except KeyError:
            raise InvalidOrderError(f"unknown account {account_id!r}", -2015) from None

    def deposit(self, account_id: str, market: Market, asset: str, amount: Decimal, ts: int) -> list[EngineEvent]:
        account = self.account(account_id)
        if market is Market.SPOT:
            account.spot.deposit(asset, amount)
            balances = account.spot.balances([asset])
        else:
            account.futures.deposit(asset, amount)
            balances = account.futures.balances([asset])
        self._emit(AccountUpdate(account_id, market, AccountUpdateReason.DEPOSIT, balances, (), ts, ts))
        return self._drain()

    def transfer(
        self, account_id: str, direction: TransferDirection, asset: str, amount: Decimal, ts: int
    ) -> list[EngineEvent]:
        """Move `amount` of `asset` between the account's spot and futures wallets (R-EX-6), all or
        nothing: `InsufficientFunds` (code -5013, as the exchange) when the source cannot give it."""
        if amount <= 0:
            raise InvalidOrderError("a transfer amount must be positive", -1102)
        account = self.account(account_id)
        if direction.source is Market.SPOT:
            try:
                account.spot.debit(asset, amount)
            except InsufficientFunds:
                raise InsufficientFunds("Asset transfer failed: insufficient balance", -5013) from None
            account.futures.deposit(asset, amount)
        else:
            account.futures.withdraw(asset, amount)
            account.spot.credit(asset, amount)
        self._account_update(account, direction.source, AccountUpdateReason.WITHDRAW, ts, [asset])
        self._account_update(account, direction.target, AccountUpdateReason.DEPOSIT, ts, [asset])
        return self._drain()

    # ==== prices ==================================================================================
    def last_price(self, market: Market, symbol: str) -> Decimal | None:
        sym = self.symbol_index(market, symbol)
        tick = self.state.last_tick(sym)
        return self.instruments[sym].ticks_to_price(tick) if tick != k.NO_PRICE else None

    def mark_price(self, symbol: str) -> Decimal:
        """Futures mark price; the last trade (then the mid) until a mark price was seen."""
        mark = self._marks.get(symbol)
        if mark is not None:
            return mark
        sym = self.symbol_index(Market.FUTURES, symbol)
        reference = self._reference_ticks(sym)
        if reference is None:
            return ZERO
        return self._tick_price(sym, reference)

    def _tick_price(self, sym: int, tick: int) -> Decimal:
        """`ticks_to_price`, remembering the last price per symbol: margin and PnL ask for the same mark
        many times per order and fill, and the price only changes with a trade."""
        last = self._last_tick_price.get(sym)
        if last is not None and last[0] == tick:
            return last[1]
        price = self.instruments[sym].ticks_to_price(tick)
        self._last_tick_price[sym] = (tick, price)
        return price

    def _reference_ticks(self, sym: int) -> int | None:
        last = self.state.last_tick(sym)
        if last != k.NO_PRICE:
            return last
        bid, ask = self.state.best(sym, 0), self.state.best(sym, 1)
        if bid != k.NO_PRICE and ask != k.NO_PRICE:
            return (bid + ask) // 2
        return None

    def book(self, market: Market, symbol: str, local: bool = False) -> KernelBookView:
        """The exchange's book (default) or the strategy's delayed view (`local`)."""
        sym = self.symbol_index(market, symbol)
        return KernelBookView(self.state, sym, self.instruments[sym], 1 if local else 0)

    def is_bar_mode(self, market: Market, symbol: str) -> bool:
        return (market, symbol) in self._bar_symbols

    # ==== market data =============================================================================
    def apply(self, event: MarketEvent) -> list[EngineEvent]:
        """Apply one market event at its exchange time (the simulator's path)."""
        self.now_ns = max(self.now_ns, event.ts_event)
        if isinstance(event, MarkPrice):
            self._on_mark(event)
        elif isinstance(event, FundingRate):
            self._on_funding_rate(event)
        else:
            self._live_builder.add(event)
            rows = self._live_builder.drain()
            for row in range(rows.shape[0]):
                if rows[row, k.COL_KIND] == k.KIND_PYTHON or not rows[row, k.COL_FLAGS] & k.FLAG_EXCHANGE:
                    continue
                self.state.ctl[k.CTL_OUT_COUNT] = 0
                s = self.state
                k.apply_exchange_row(rows, row, s.ctl, s.sym_state, s.lots, s.orders, s.ahead, s.out, s.params)
                self._process_out()
        self._check_schedule(self.now_ns)
        return self._drain()

    def load(self, table: EventTable) -> None:
        """Market data for `run_until` (batch mode)."""
        self._table = table
        self.state.ctl[k.CTL_EXCHANGE_CURSOR] = 0
        self.state.ctl[k.CTL_LOCAL_CURSOR] = 0
        self.run_kernel = self._compiled_run(table)

    def _compiled_run(self, table: EventTable) -> Callable[..., int]:
        """`kernel.run` for this table and state, as its compiled overload.

        A backtest calls the kernel once per stop (thousands of times); numba's dispatcher types all
        ten arguments on every call, which costs about as much as a short batch of rows. The argument
        types never change for one table (the state's arrays keep their dtype, rank and C layout when
        they grow), so the overload is looked up once. A table of another layout keeps the dispatcher.
        """
        rows = table.rows
        if not (rows.ndim == 2 and rows.dtype == np.int64 and rows.flags.c_contiguous):
            return k.run
        s = self.state
        arguments = (rows, s.ctl, s.sym_state, s.lots, s.orders, s.ahead, s.out, s.params, 0, 0)
        signature = tuple(k.run.typeof_pyval(argument) for argument in arguments)
        return k.run.compile(signature)

    def run_until(self, stop_ts: int, notify_mask: int = 0) -> int:
        """Process the loaded table up to `stop_ts`.

        Returns kernel.STATUS_STOP / STATUS_END, STATUS_LOCAL_NOTIFY (a row the strategy wants reached
        its local time: `notify_row`), or STATUS_FILLS when engine events are waiting in `drain()` (so
        the caller can schedule their delivery before going on).
        """
        table = self._table
        if table is None:
            raise ConfigurationError("no market data loaded")
        s = self.state
        run = self.run_kernel
        while True:
            status = int(
                run(table.rows, s.ctl, s.sym_state, s.lots, s.orders, s.ahead, s.out, s.params, stop_ts, notify_mask)
            )
            outcome = self.after_kernel(status)
            if outcome is not None:
                return outcome

    def after_kernel(self, status: int) -> int | None:
        """Handle what a kernel call stopped for: None means "nothing for the caller, run on"; else the
        status to return (STATUS_FILLS when engine events wait in `drain()`)."""
        s = self.state
        self.now_ns = max(self.now_ns, int(s.ctl[k.CTL_NOW]))
        if status == k.STATUS_FILLS:
            self._process_out()
        elif status == k.STATUS_EXCHANGE_PYTHON:
            assert self._table is not None
            row = int(s.ctl[k.CTL_ROW])
            s.ctl[k.CTL_EXCHANGE_CURSOR] = row + 1
            event = self._table.objects[int(self._table.rows[row, k.COL_REF])]
            if isinstance(event, MarkPrice):
                self._on_mark(event)
            elif isinstance(event, FundingRate):
                self._on_funding_rate(event)
        else:
            return status
        return k.STATUS_FILLS if self._outbox else None

    @property
    def notify_row(self) -> int:
        return int(self.state.ctl[k.CTL_ROW])

    def drain(self) -> list[EngineEvent]:
        return self._drain()

    def _drain(self) -> list[EngineEvent]:
        events, self._outbox = self._outbox, []
        return events

    def _emit(self, event: EngineEvent) -> None:
        self._outbox.append(event)

    # ==== kernel output ===========================================================================
    def _process_out(self) -> None:
        s = self.state
        count = int(s.ctl[k.CTL_OUT_COUNT])
        records = s.out[:count].copy()
        s.ctl[k.CTL_OUT_COUNT] = 0
        for kind, slot, tick, lots, maker, ts in records.tolist():
            order = self._slot_orders.get(slot)
            if order is None or not order.is_open:
                continue
            if kind == k.OUT_FILL:
                liquidity = LiquiditySide.MAKER if maker else LiquiditySide.TAKER
                self._fill(order, tick, lots, liquidity, ts)
            elif kind == k.OUT_TRIGGER:
                self._on_trigger(order, tick, ts)
            elif kind == k.OUT_EXPIRE:
                self._finish(order, OrderStatus.EXPIRED, ExecutionType.EXPIRED, ts, EXPIRED_IOC)

    # ==== the parts execution.py and futures.py provide ============================================
    @abstractmethod
    def _fill(self, order: SimOrder, tick: int, lots: int, liquidity: LiquiditySide, ts: int) -> None:
        """Account one fill of `order` at `tick` for `lots`."""

    @abstractmethod
    def _on_trigger(self, order: SimOrder, tick: int, ts: int) -> None:
        """A conditional order's condition held at price `tick`."""

    @abstractmethod
    def _on_mark(self, event: MarkPrice) -> None:
        """A futures mark price (triggers on mark, liquidations, funding schedule)."""

    @abstractmethod
    def _on_funding_rate(self, event: FundingRate) -> None:
        """A settled funding rate from the recording."""

    @abstractmethod
    def _check_schedule(self, ts: int) -> None:
        """Time-driven work due at `ts` (scheduled funding, GTD expiry)."""

    # ==== shared helpers ==========================================================================
    def _new_id(self) -> int:
        order_id = self._next_order_id
        self._next_order_id += 1
        return order_id

    def _trade_id(self) -> int:
        trade_id = self._next_trade_id
        self._next_trade_id += 1
        return trade_id

    def _order_update(
        self,
        order: SimOrder,
        execution: ExecutionType,
        ts: int,
        fill: Fill | None = None,
        reason: str | None = None,
        code: int | None = None,
    ) -> None:
        order.ts_updated = ts
        snapshot = order.snapshot()
        order.reported = snapshot
        self._emit(OrderUpdate(order.account_id, snapshot, execution, ts, ts, fill, code, reason))

    def _account_update(
        self,
        account: _Account,
        market: Market,
        reason: AccountUpdateReason,
        ts: int,
        assets: Sequence[str],
        symbols: Sequence[str] = (),
    ) -> None:
        if market is Market.SPOT:
            balances = account.spot.balances(assets)
            positions: tuple[PositionSnapshot, ...] = ()
        else:
            balances = account.futures.balances(assets)
            positions = tuple(
                account.futures.snapshot(account.futures.positions[s], with_liquidation_price=False)
                for s in symbols
                if s in account.futures.positions
            )
        self._emit(AccountUpdate(account.account_id, market, reason, balances, positions, ts, ts))

    def _make_fill(
        self,
        order: SimOrder,
        price: Decimal,
        quantity: Decimal,
        fee: Decimal,
        fee_asset: str,
        liquidity: LiquiditySide,
        ts: int,
        realized: Decimal,
    ) -> Fill:
        return Fill(
            client_order_id=order.client_order_id,
            venue_order_id=VenueOrderId(order.order_id),
            trade_id=TradeId(self._trade_id()),
            market=order.market,
            symbol=order.symbol,
            side=order.side,
            price=price,
            quantity=quantity,
            fee=fee,
            fee_asset=fee_asset,
            liquidity=liquidity,
            ts_event=ts,
            ts_init=ts,
            realized_pnl=realized,
        )

    def _finish(
        self, order: SimOrder, status: OrderStatus, execution: ExecutionType, ts: int, reason: str | None = None
    ) -> None:
        """End an open order (cancel / expire / fully filled): free its slot, lock and margin."""
        account = self.accounts[order.account_id]
        if status is not OrderStatus.FILLED:
            order.status = status
            order.expiry_reason = reason if status is OrderStatus.EXPIRED else order.expiry_reason
        if order.slot >= 0:
            self.state.release(order.slot)
            self._slot_orders.pop(order.slot, None)
            order.slot = -1
        account.open_by_client.pop((order.market, order.symbol, order.client_order_id), None)
        self._gtd_orders.discard(order)
        if order.lock is not None:
            siblings = self._lists.get(order.order_list_id, [])
            if not any(o is not order and o.is_open for o in siblings):
                account.spot.release(order.lock, order.lock.amount)
        if order.margin_reserved:
            account.futures.release_order_margin(order.symbol, order.margin_reserved)
            order.margin_reserved = ZERO
        if status is not OrderStatus.FILLED:
            self._order_update(order, execution, ts, reason=reason)
            if order.lock is not None:
                self._account_update(account, Market.SPOT, AccountUpdateReason.ORDER, ts, [order.lock.asset])

    def client_order_id_for(self, order_id: int) -> ClientOrderId:
        return self.orders[order_id].client_order_id
