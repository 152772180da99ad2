"""THE matching engine's public API: order entry, cancel, modify, OCO lists and queries.

`MatchingEngine` = `EngineBase` (settings, accounts, market data) + `ExecutionEngine` (taking, resting,
fills, triggers) + `FuturesEngine` (mark, funding, liquidation, leverage) + this order entry. Every
method takes the exchange time `ts` and returns the `OrderUpdate` / `AccountUpdate` events it caused;
a rejected request raises `InvalidOrderError` with the exchange's code and message and changes nothing.
"""

from __future__ import annotations

from decimal import Decimal

from kestrel.core.enums import Market, OrderStatus, OrderType, Side, TimeInForce
from kestrel.core.errors import InvalidOrderError
from kestrel.core.identifiers import ClientOrderId
from kestrel.core.instrument import Instrument
from kestrel.core.venue import (
    AccountUpdateReason,
    ExecutionType,
    OcoLeg,
    OcoRequest,
    OrderRequest,
    OrderSnapshot,
    WorkingType,
)
from kestrel.matching import kernel as k
from kestrel.matching.accounts import Lock
from kestrel.matching.base import ZERO, EngineEvent, EngineSettings, _Account
from kestrel.matching.futures import FuturesEngine
from kestrel.matching.orders import (
    EXPIRED_IOC,
    MARKET_LIKE,
    STOP_TYPES,
    SimOrder,
    price_error,
    reject,
    validate_client_order_id,
    validate_shape,
)

__all__ = ["EngineEvent", "EngineSettings", "MatchingEngine"]

_OCO_LIMIT_LEGS = frozenset({OrderType.LIMIT_MAKER, OrderType.TAKE_PROFIT_MARKET, OrderType.TAKE_PROFIT_LIMIT})
_OCO_STOP_LEGS = frozenset({OrderType.STOP_MARKET, OrderType.STOP_LIMIT})


class MatchingEngine(FuturesEngine):
    # ==== new orders ==============================================================================
    def submit_order(
        self, account_id: str, request: OrderRequest, ts: int, client_order_id: ClientOrderId | None = None
    ) -> list[EngineEvent]:
        """Accept (and work) a new order, or raise InvalidOrderError as the exchange would refuse it.
        `client_order_id` names the order when the request does not."""
        self.now_ns = max(self.now_ns, ts)
        account = self.account(account_id)
        order = self._accept(account, request, ts, client_order_id=client_order_id)
        self._start(order, ts)
        return self._drain()

    def _accept(
        self,
        account: _Account,
        request: OrderRequest,
        ts: int,
        list_id: int = -1,
        lock: Lock | None = None,
        client_order_id: ClientOrderId | None = None,
    ) -> SimOrder:
        instrument = self.instrument(request.market, request.symbol)
        if not instrument.is_trading:
            raise reject("Market is closed.", -2010)
        client_order_id = request.client_order_id or client_order_id
        if client_order_id is not None:
            validate_client_order_id(client_order_id, instrument.market)
            if (instrument.market, instrument.symbol, client_order_id) in account.open_by_client:
                if instrument.market is Market.SPOT:
                    raise reject("Duplicate order sent.", -2010)
                raise reject("ClientOrderId is duplicated.", -4116)
        validate_shape(request, instrument, ts)
        self._check_open_order_count(account, instrument)
        order = SimOrder(
            order_id=0,
            account_id=account.account_id,
            client_order_id=client_order_id or ClientOrderId(""),
            instrument=instrument,
            side=request.side,
            order_type=request.order_type,
            quantity=request.quantity or ZERO,
            ts_created=ts,
            price=request.price,
            stop_price=request.stop_price,
            time_in_force=request.time_in_force,
            reduce_only=request.reduce_only,
            close_position=request.close_position,
            iceberg_quantity=request.iceberg_quantity,
            quote_order_quantity=request.quote_order_quantity,
            working_type=request.working_type,
            activation_price=request.activation_price,
            trailing_callback_rate=request.trailing_callback_rate,
            trailing_delta_bips=request.trailing_delta_bips,
            good_till_ns=request.good_till_ns,
            order_list_id=list_id,
            ts_updated=ts,
        )
        sym = self._sym(order)
        self._check_trigger(order, sym)
        self._check_post_only(order, sym)
        self._check_fill_or_kill(order, sym)
        self._check_notional(order, sym)
        self._check_reduce_only(order)
        if instrument.market is Market.SPOT:
            order.lock = lock if lock is not None else self._lock_spot(account, order, sym)
        else:
            self._reserve_margin(account, order, sym)
        order.order_id = self._new_id()
        if not order.client_order_id:
            order.client_order_id = ClientOrderId(f"sim-{order.order_id}")
        self.orders[order.order_id] = order
        account.open_by_client[(order.market, order.symbol, order.client_order_id)] = order
        if order.good_till_ns is not None:
            self._gtd_orders.add(order)
        return order

    def _start(self, order: SimOrder, ts: int) -> None:
        """Announce a just-accepted order and put it to work."""
        account = self.accounts[order.account_id]
        self._order_update(order, ExecutionType.NEW, ts)
        if order.lock is not None and order.lock.amount > 0 and order.order_list_id < 0:
            self._account_update(account, Market.SPOT, AccountUpdateReason.ORDER, ts, [order.lock.asset])
        sym = self._sym(order)
        if order.is_conditional:
            self._arm(order)
        elif (
            order.time_in_force is TimeInForce.FOK
            and not self.state.sym_state[sym, k.S_BAR_MODE]
            and not self._fillable(order, sym)
        ):
            self._finish(order, OrderStatus.EXPIRED, ExecutionType.EXPIRED, ts, EXPIRED_IOC)  # spot FOK: all or nothing
        else:
            self._execute(order, ts)

    def _check_open_order_count(self, account: _Account, instrument: Instrument) -> None:
        if instrument.max_num_orders is None:
            return
        count = sum(
            1
            for o in account.open_by_client.values()
            if o.symbol == instrument.symbol and o.market is instrument.market
        )
        if count >= instrument.max_num_orders:
            if instrument.market is Market.SPOT:
                raise reject("Filter failure: MAX_NUM_ORDERS", -1013)
            raise reject("Reach max open order limit.", -2025)

    def _watched_tick(self, order: SimOrder, sym: int) -> int:
        if order.working_type is WorkingType.MARK_PRICE:
            return int(self.state.sym_state[sym, k.S_MARK_TICK])
        return self.state.last_tick(sym)

    def _trigger_direction(self, order: SimOrder) -> int:
        """+1: fires when the price rises to the trigger; −1: when it falls to it."""
        buy = order.side is Side.BUY
        if order.order_type in STOP_TYPES:
            return 1 if buy else -1
        return -1 if buy else 1

    def _check_trigger(self, order: SimOrder, sym: int) -> None:
        if not order.is_conditional:
            return
        now = self._watched_tick(order, sym)
        if now == k.NO_PRICE:
            return
        immediate = (
            "Order would immediately trigger." if order.market is Market.FUTURES else "Order would trigger immediately."
        )
        code = -2021 if order.market is Market.FUTURES else -2010
        if order.order_type is OrderType.TRAILING_STOP_MARKET:
            if order.activation_price is not None:
                activation = order.instrument.price_to_ticks(order.activation_price)
                if (order.side is Side.BUY and activation >= now) or (order.side is Side.SELL and activation <= now):
                    raise reject(immediate, code)
            return
        if order.trailing_delta_bips is not None or order.stop_price is None:
            return
        trigger = order.instrument.price_to_ticks(order.stop_price)
        direction = self._trigger_direction(order)
        if (direction > 0 and now >= trigger) or (direction < 0 and now <= trigger):
            raise reject(immediate, code)

    def _would_take(self, order: SimOrder, sym: int) -> bool:
        if order.price is None:
            return True
        tick = order.instrument.price_to_ticks(order.price)
        if order.side is Side.BUY:
            ask = self.state.best(sym, 1)
            return ask != k.NO_PRICE and ask <= tick
        bid = self.state.best(sym, 0)
        return bid != k.NO_PRICE and bid >= tick

    def _check_post_only(self, order: SimOrder, sym: int) -> None:
        post_only = order.order_type is OrderType.LIMIT_MAKER or order.time_in_force is TimeInForce.GTX
        if not post_only or not self._would_take(order, sym):
            return
        if order.market is Market.SPOT:
            raise reject("Order would immediately match and take.", -2010)
        raise reject(
            "Due to the order could not be executed as maker, the Post Only order will be rejected. "
            "The order will not be recorded in the order history",
            -5022,
        )

    def _fillable(self, order: SimOrder, sym: int) -> bool:
        """Whether the book can fill all of the order now, within its limit."""
        s = self.state
        wanted = order.instrument.quantity_to_lots(order.quantity)
        limit = order.instrument.price_to_ticks(order.price or ZERO)
        side = 0 if order.side is Side.BUY else 1
        count = int(k.take_liquidity(s.lots, s.sym_state, sym, side, limit, wanted, s.taker_fills, False))
        return int(s.taker_fills[:count, 1].sum()) >= wanted

    def _check_fill_or_kill(self, order: SimOrder, sym: int) -> None:
        """Futures refuse a FOK that cannot fill at once (-5021); spot accepts it and expires it."""
        if order.time_in_force is not TimeInForce.FOK or order.market is Market.SPOT or order.is_conditional:
            return
        if self.state.sym_state[sym, k.S_BAR_MODE]:
            return  # bar mode decides at the next price point
        if not self._fillable(order, sym):
            raise reject(
                "Due to the order could not be filled immediately, the FOK order has been rejected. "
                "The order will not be recorded in the order history",
                -5021,
            )

    def _reference_price(self, order: SimOrder, sym: int) -> Decimal | None:
        """The price an order's notional and margin are measured at."""
        if order.price is not None:
            return order.price
        if order.stop_price is not None:
            return order.stop_price
        if order.market is Market.FUTURES and order.symbol in self._marks:
            return self._marks[order.symbol]
        side = 1 if order.side is Side.BUY else 0
        best = self.state.best(sym, side)
        if best != k.NO_PRICE and self.state.level(sym, side, best) < k.BAR_LOTS:
            return order.instrument.ticks_to_price(best)
        reference = self._reference_ticks(sym)
        return order.instrument.ticks_to_price(reference) if reference is not None else None

    def _check_notional(self, order: SimOrder, sym: int) -> None:
        if order.close_position or order.quantity <= 0 or (order.reduce_only and order.market is Market.FUTURES):
            return
        price = self._reference_price(order, sym)
        if price is None:
            return
        lot_type = OrderType.MARKET if order.order_type in MARKET_LIKE else OrderType.LIMIT
        order.instrument.check_notional(price, order.quantity, lot_type)
        percent = order.instrument.percent_price
        if (
            order.market is Market.FUTURES
            and percent is not None
            and order.price is not None
            and order.symbol in self._marks
        ):
            mark = self._marks[order.symbol]
            if order.side is Side.BUY and order.price > mark * percent.multiplier_up:
                raise reject(f"Limit price can't be higher than {mark * percent.multiplier_up}.", -4016)
            if order.side is Side.SELL and order.price < mark * percent.multiplier_down:
                raise reject(f"Limit price can't be lower than {mark * percent.multiplier_down}.", -4024)

    def _check_reduce_only(self, order: SimOrder) -> None:
        if order.reduce_only and not order.is_conditional and self._reducible_lots(order) == 0:
            raise reject("ReduceOnly Order is rejected.", -2022)

    def _lock_spot(self, account: _Account, order: SimOrder, sym: int) -> Lock:
        instrument = order.instrument
        if order.side is Side.SELL:
            return account.spot.lock(instrument.base_asset, order.quantity)
        quote = instrument.quote_asset
        if order.price is not None:
            return account.spot.lock(quote, order.price * order.quantity)
        bar_mode = bool(self.state.sym_state[sym, k.S_BAR_MODE])
        if order.quote_order_quantity is not None:
            if order.quote_order_quantity > account.spot.free(quote):
                raise reject("Account has insufficient balance for requested action.", -2010)
            return account.spot.lock(quote, order.quote_order_quantity if bar_mode else ZERO)
        reference = self._reference_price(order, sym)
        if order.order_type is OrderType.MARKET and not bar_mode:
            cost = self._market_cost(order, sym)
            if cost is not None and cost > account.spot.free(quote):
                raise reject("Account has insufficient balance for requested action.", -2010)
            return account.spot.lock(quote, ZERO)
        # triggers later or at the next bar point: reserve for a price move, within what is free
        estimate = (reference or ZERO) * order.quantity
        if estimate > account.spot.free(quote):
            raise reject("Account has insufficient balance for requested action.", -2010)
        return account.spot.lock(
            quote, min(account.spot.free(quote), estimate * (1 + self.settings.bar_market_reserve))
        )

    def _market_cost(self, order: SimOrder, sym: int) -> Decimal | None:
        s = self.state
        wanted = order.instrument.quantity_to_lots(order.quantity)
        count = int(k.take_liquidity(s.lots, s.sym_state, sym, 0, 0, wanted, s.taker_fills, False))
        if count == 0:
            return None
        instrument = order.instrument
        return sum(
            (instrument.ticks_to_price(t) * instrument.lots_to_quantity(q) for t, q in s.taker_fills[:count].tolist()),
            start=ZERO,
        )

    def _reserve_margin(self, account: _Account, order: SimOrder, sym: int) -> None:
        """Initial margin for the part of the order that would open or grow the position (-2019 when
        the available balance is short; -2027 past the leverage bracket's cap)."""
        if order.reduce_only or order.close_position:
            return
        instrument = order.instrument
        asset = instrument.margin_asset or instrument.quote_asset
        position = account.futures.position(order.symbol, asset)
        reducing = position.quantity != 0 and (position.quantity > 0) != (order.side is Side.BUY)
        opening = order.quantity - (min(order.quantity, abs(position.quantity)) if reducing else ZERO)
        if opening <= 0:
            return
        price = self._reference_price(order, sym)
        if price is None:
            return
        table = account.futures.brackets.table(order.symbol)
        size_after = (abs(position.quantity) if not reducing else ZERO) + opening
        if size_after * price > table.max_notional(position.leverage):
            raise reject("Exceeded the maximum allowable position at current leverage.", -2027)
        margin = price * opening / position.leverage
        account.futures.reserve_order_margin(order.symbol, asset, margin)
        order.margin_reserved = margin

    def _arm(self, order: SimOrder) -> None:
        """Register a conditional order's trigger with the kernel."""
        s = self.state
        sym = self._sym(order)
        slot = s.allocate()
        row = s.orders[slot]
        instrument = order.instrument
        row[k.O_SIDE] = 0 if order.side is Side.BUY else 1
        row[k.O_TRIGGER_SOURCE] = 1 if order.working_type is WorkingType.MARK_PRICE else 0
        row[k.O_ID] = order.order_id
        trailing_ppm = 0
        if order.trailing_callback_rate is not None:
            trailing_ppm = int(order.trailing_callback_rate * 10_000)
        elif order.trailing_delta_bips is not None:
            trailing_ppm = order.trailing_delta_bips * 100
        if trailing_ppm:
            row[k.O_TRAIL_PPM] = trailing_ppm
            activation = order.activation_price if order.activation_price is not None else order.stop_price
            row[k.O_ACTIVATION_TICK] = instrument.price_to_ticks(activation) if activation is not None else 0
            now = self._watched_tick(order, sym)
            if row[k.O_ACTIVATION_TICK] == 0 and now != k.NO_PRICE:
                row[k.O_TRAIL_ACTIVE] = 1
                row[k.O_EXTREME_TICK] = now
        else:
            row[k.O_TRIGGER_TICK] = instrument.price_to_ticks(order.stop_price or ZERO)
            row[k.O_TRIGGER_DIRECTION] = self._trigger_direction(order)
        s.activate(slot, k.STATE_CONDITIONAL, sym)
        order.slot = slot
        self._slot_orders[slot] = order

    # ==== OCO =====================================================================================
    def submit_oco(self, account_id: str, request: OcoRequest, ts: int) -> list[EngineEvent]:
        """Spot OCO: a take-profit / limit-maker leg above (SELL) or below (BUY) the market and a stop
        leg on the other side, sharing one quantity and one lock."""
        self.now_ns = max(self.now_ns, ts)
        account = self.account(account_id)
        if request.market is not Market.SPOT:
            raise reject("OCO orders are spot only.", -1116)
        instrument = self.instrument(Market.SPOT, request.symbol)
        legs = (request.above, request.below)
        kinds = {leg.order_type for leg in legs}
        if len(kinds & _OCO_LIMIT_LEGS) != 1 or len(kinds & _OCO_STOP_LEGS) != 1:
            raise reject("OCO needs one LIMIT_MAKER / TAKE_PROFIT leg and one STOP_LOSS leg.", -1116)
        self._check_oco_prices(request, instrument)
        requests = [self._leg_request(request, leg) for leg in legs]
        sym = self.symbol_index(Market.SPOT, request.symbol)
        list_id = self._next_list_id
        if request.side is Side.SELL:
            amount, asset = request.quantity, instrument.base_asset
        else:
            reference = self.state.last_tick(sym)
            last = instrument.ticks_to_price(reference) if reference != k.NO_PRICE else ZERO
            prices = [leg.price or leg.stop_price or last for leg in legs]
            amount, asset = max(prices) * request.quantity, instrument.quote_asset
        lock = account.spot.lock(asset, amount)
        accepted: list[SimOrder] = []
        try:
            accepted.extend(self._accept(account, leg_request, ts, list_id, lock) for leg_request in requests)
        except InvalidOrderError:
            for order in accepted:
                del self.orders[order.order_id]
                account.open_by_client.pop((order.market, order.symbol, order.client_order_id), None)
            account.spot.release(lock, lock.amount)
            raise
        self._next_list_id += 1
        self._lists[list_id] = accepted
        self._account_update(account, Market.SPOT, AccountUpdateReason.ORDER, ts, [asset])
        for order in accepted:
            if order.is_open:
                self._start(order, ts)
        return self._drain()

    @staticmethod
    def _leg_request(request: OcoRequest, leg: OcoLeg) -> OrderRequest:
        return OrderRequest(
            market=Market.SPOT,
            symbol=request.symbol,
            side=request.side,
            order_type=leg.order_type,
            quantity=request.quantity,
            price=leg.price,
            stop_price=leg.stop_price,
            time_in_force=leg.time_in_force,
            client_order_id=leg.client_order_id,
            trailing_delta_bips=leg.trailing_delta_bips,
        )

    def _check_oco_prices(self, request: OcoRequest, instrument: Instrument) -> None:
        sym = self.symbol_index(Market.SPOT, request.symbol)
        last = self.state.last_tick(sym)
        if last == k.NO_PRICE:
            return
        above = request.above.price if request.above.order_type in _OCO_LIMIT_LEGS else request.above.stop_price
        below = request.below.stop_price if request.below.order_type in _OCO_STOP_LEGS else request.below.price
        if above is None or below is None:
            return
        last_price = instrument.ticks_to_price(last)
        if not below < last_price < above:
            raise reject("The relationship of the prices for the orders is not correct.", -1013)

    # ==== cancel / modify =========================================================================
    def _find(
        self, account: _Account, market: Market, symbol: str, order_id: int | None, client_order_id: str | None
    ) -> SimOrder | None:
        if client_order_id is not None:
            found = account.open_by_client.get((market, symbol, client_order_id))
            if found is not None:
                return found
            matches = [
                o
                for o in self.orders.values()
                if o.account_id == account.account_id
                and o.symbol == symbol
                and o.market is market
                and o.client_order_id == client_order_id
            ]
            return matches[-1] if matches else None
        order = self.orders.get(order_id or -1)
        if (
            order is None
            or order.account_id != account.account_id
            or order.symbol != symbol
            or order.market is not market
        ):
            return None
        return order

    def cancel_order(
        self,
        account_id: str,
        market: Market,
        symbol: str,
        ts: int,
        *,
        order_id: int | None = None,
        client_order_id: str | None = None,
    ) -> list[EngineEvent]:
        """Cancel an open order (an OCO leg cancels its whole list); -2011 when it is not open."""
        self.now_ns = max(self.now_ns, ts)
        account = self.account(account_id)
        self.symbol_index(market, symbol)
        order = self._find(account, market, symbol, order_id, client_order_id)
        if order is None or not order.is_open:
            raise reject("Unknown order sent.", -2011)
        targets = self._lists.get(order.order_list_id, [order]) if order.order_list_id >= 0 else [order]
        for target in targets:
            if target.is_open:
                self._finish(target, OrderStatus.CANCELED, ExecutionType.CANCELED, ts)
        return self._drain()

    def cancel_all(self, account_id: str, market: Market, symbol: str, ts: int) -> list[EngineEvent]:
        account = self.account(account_id)
        self.symbol_index(market, symbol)
        for order in sorted(account.open_by_client.values(), key=lambda o: o.order_id):
            if order.is_open and order.market is market and order.symbol == symbol:
                self._finish(order, OrderStatus.CANCELED, ExecutionType.CANCELED, ts)
        return self._drain()

    def modify_order(
        self,
        account_id: str,
        market: Market,
        symbol: str,
        ts: int,
        *,
        order_id: int | None = None,
        client_order_id: str | None = None,
        price: Decimal | None = None,
        quantity: Decimal | None = None,
    ) -> list[EngineEvent]:
        """Change a resting LIMIT order. Same price and a smaller quantity keep the queue position;
        anything else re-queues it at the back (and a crossing price makes it take liquidity)."""
        self.now_ns = max(self.now_ns, ts)
        account = self.account(account_id)
        order = self._find(account, market, symbol, order_id, client_order_id)
        if order is None or not order.is_open:
            raise reject("Unknown order sent.", -2011)
        if order.order_type not in (OrderType.LIMIT, OrderType.LIMIT_MAKER) or order.order_list_id >= 0:
            raise reject("Only LIMIT orders can be modified.", -1013)
        new_price = price if price is not None else order.price
        new_quantity = quantity if quantity is not None else order.quantity
        if new_price is None or new_quantity <= order.filled:
            raise reject("Quantity must be greater than the executed quantity.", -1013)
        error = price_error(order.instrument, new_price)
        if error is not None:
            raise error
        order.instrument.validate(new_price, new_quantity, OrderType.LIMIT)
        keep_priority = new_price == order.price and new_quantity < order.quantity
        old_price, old_quantity = order.price, order.quantity
        order.price, order.quantity = new_price, new_quantity
        sym = self._sym(order)
        try:
            if not keep_priority:
                self._check_post_only(order, sym)
            self._rebalance_funds(account, order, old_price or ZERO, old_quantity)
        except InvalidOrderError:
            order.price, order.quantity = old_price, old_quantity
            raise
        self._order_update(order, ExecutionType.AMENDMENT, ts)
        if keep_priority and order.slot >= 0:
            leaves = order.instrument.quantity_to_lots(order.leaves)
            row = self.state.orders[order.slot]
            row[k.O_LEAVES] = leaves
            row[k.O_DISPLAY] = min(int(row[k.O_DISPLAY]), leaves)
        else:
            if order.slot >= 0:
                self.state.release(order.slot)
                self._slot_orders.pop(order.slot, None)
                order.slot = -1
            self._execute(order, ts)
        return self._drain()

    def _rebalance_funds(self, account: _Account, order: SimOrder, old_price: Decimal, old_quantity: Decimal) -> None:
        if order.market is Market.SPOT and order.lock is not None:
            needed = order.leaves * (order.price or ZERO) if order.side is Side.BUY else order.leaves
            extra = needed - order.lock.amount
            if extra > 0:
                top_up = account.spot.lock(order.lock.asset, extra)
                order.lock.amount += top_up.amount
            elif extra < 0:
                account.spot.release(order.lock, -extra)
        elif order.market is Market.FUTURES and order.margin_reserved:
            account.futures.release_order_margin(order.symbol, order.margin_reserved)
            order.margin_reserved = ZERO
            self._reserve_margin(account, order, self._sym(order))

    # ==== queries =================================================================================
    def query_order(
        self,
        account_id: str,
        market: Market,
        symbol: str,
        *,
        order_id: int | None = None,
        client_order_id: str | None = None,
    ) -> OrderSnapshot:
        order = self._find(self.account(account_id), market, symbol, order_id, client_order_id)
        if order is None:
            raise reject("Order does not exist.", -2013)
        return order.snapshot()

    def open_orders(
        self, account_id: str, market: Market | None = None, symbol: str | None = None
    ) -> list[OrderSnapshot]:
        account = self.account(account_id)
        found = [
            o
            for o in account.open_by_client.values()
            if o.is_open and (market is None or o.market is market) and (symbol is None or o.symbol == symbol)
        ]
        return [o.snapshot() for o in sorted(found, key=lambda o: o.order_id)]

    def all_orders(self, account_id: str, market: Market, symbol: str) -> list[OrderSnapshot]:
        return [
            o.snapshot()
            for o in self.orders.values()
            if o.account_id == account_id and o.market is market and o.symbol == symbol
        ]
