"""Order execution: taking liquidity, resting on the book, fills and their accounting, triggers."""

from __future__ import annotations

from decimal import Decimal

from kestrel.core.enums import LiquiditySide, Market, OrderStatus, Side, TimeInForce
from kestrel.core.venue import AccountUpdateReason, ExecutionType
from kestrel.matching import formulas
from kestrel.matching import kernel as k
from kestrel.matching.base import ZERO, EngineBase, _Account
from kestrel.matching.orders import (
    EXPIRED_BALANCE,
    EXPIRED_IOC,
    EXPIRED_MARKET,
    EXPIRED_NO_POSITION,
    EXPIRED_OCO,
    EXPIRED_REDUCE_ONLY,
    SimOrder,
)


class ExecutionEngine(EngineBase):
    def _sym(self, order: SimOrder) -> int:
        return self._index[(order.market, order.symbol)]

    # ---- reduce-only ---------------------------------------------------------------------------
    def _reducible_lots(self, order: SimOrder) -> int | None:
        """Lots a reduce-only / close-position order may still fill; None when it is unrestricted."""
        if order.market is Market.SPOT or not (order.reduce_only or order.close_position):
            return None
        position = self.accounts[order.account_id].futures.positions.get(order.symbol)
        quantity = position.quantity if position is not None else ZERO
        if quantity == 0 or (quantity > 0) == (order.side is Side.BUY):
            return 0
        return order.instrument.quantity_to_lots(abs(quantity))

    def _refresh_reduce_only(self, account: _Account, symbol: str, ts: int) -> None:
        """After the position changed: cap working reduce-only orders by it, expire those that cannot
        reduce any more (Binance expiry reason 4)."""
        for order in [o for o in account.open_by_client.values() if o.symbol == symbol and o.market is Market.FUTURES]:
            if not order.reduce_only or (order.is_conditional and not order.triggered) or not order.is_open:
                continue
            allowed = self._reducible_lots(order)
            if allowed == 0:
                self._finish(order, OrderStatus.EXPIRED, ExecutionType.EXPIRED, ts, EXPIRED_REDUCE_ONLY)
            elif allowed is not None and order.slot >= 0:
                self.state.orders[order.slot, k.O_CAP] = allowed

    # ---- working an order ----------------------------------------------------------------------
    def _execute(self, order: SimOrder, ts: int) -> None:
        """Work a non-conditional (or just triggered) order: take what it can, then rest or expire."""
        sym = self._sym(order)
        if self.state.sym_state[sym, k.S_BAR_MODE]:
            self._park(order, sym)
            return
        limit_tick = 0 if order.works_as_market else order.instrument.price_to_ticks(order.price or ZERO)
        if order.quote_order_quantity is not None and order.filled == 0:
            self._size_by_quote(order, sym)
        self._take(order, sym, limit_tick, ts)
        if not order.is_open:
            return
        if order.works_as_market:
            self._finish(order, OrderStatus.EXPIRED, ExecutionType.EXPIRED, ts, EXPIRED_MARKET)
        elif order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
            self._finish(order, OrderStatus.EXPIRED, ExecutionType.EXPIRED, ts, EXPIRED_IOC)
        else:
            self._rest(order, sym)

    def _size_by_quote(self, order: SimOrder, sym: int) -> None:
        """Spot MARKET by quoteOrderQty: the quantity the quote amount buys (or sells for) on the book."""
        budget = order.quote_order_quantity or ZERO
        instrument = order.instrument
        side = 1 if order.side is Side.BUY else 0
        levels = k.top_levels(self.state.lots, self.state.sym_state, 0, sym, side, 5000)
        lots = 0
        for tick, available in levels.tolist():
            price = instrument.ticks_to_price(tick)
            affordable = int(budget / (price * instrument.step_size))
            taken = min(available, affordable)
            lots += taken
            budget -= price * instrument.lots_to_quantity(taken)
            if taken < available:
                break
        order.quantity = instrument.lots_to_quantity(lots) if lots else ZERO

    def _take(self, order: SimOrder, sym: int, limit_tick: int, ts: int) -> None:
        instrument = order.instrument
        if order.leaves <= 0:
            return
        max_lots = instrument.quantity_to_lots(order.leaves)
        reducible = self._reducible_lots(order)
        if reducible is not None:
            max_lots = min(max_lots, reducible)
        if order.market is Market.SPOT and order.side is Side.BUY and order.price is None:
            max_lots = self._affordable_lots(order, sym, max_lots)
        s = self.state
        side = 0 if order.side is Side.BUY else 1
        count = int(k.take_liquidity(s.lots, s.sym_state, sym, side, limit_tick, max_lots, s.taker_fills, True))
        for tick, lots in s.taker_fills[:count].tolist():
            if not order.is_open:
                break
            self._fill(order, tick, lots, LiquiditySide.TAKER, ts)

    def _affordable_lots(self, order: SimOrder, sym: int, max_lots: int) -> int:
        """Spot market-like BUY: how many lots the free quote balance (plus the order's lock) pays for."""
        account = self.accounts[order.account_id]
        instrument = order.instrument
        budget = account.spot.free(instrument.quote_asset) + (order.lock.amount if order.lock is not None else ZERO)
        lots = 0
        for tick, available in k.top_levels(self.state.lots, self.state.sym_state, 0, sym, 1, 5000).tolist():
            price = instrument.ticks_to_price(tick)
            taken = min(available, max_lots - lots, int(budget / (price * instrument.step_size)))
            lots += taken
            budget -= price * instrument.lots_to_quantity(taken)
            if lots >= max_lots or taken < available:
                break
        return lots

    def _rest(self, order: SimOrder, sym: int) -> None:
        """Put the order's remainder on the exchange book, at the back of its price level's queue."""
        s = self.state
        slot = order.slot if order.slot >= 0 else s.allocate()
        instrument = order.instrument
        side = 0 if order.side is Side.BUY else 1
        tick = instrument.price_to_ticks(order.price or ZERO)
        leaves = instrument.quantity_to_lots(order.leaves)
        peak = instrument.quantity_to_lots(order.iceberg_quantity) if order.iceberg_quantity else 0
        row = s.orders[slot]
        row[k.O_SIDE] = side
        row[k.O_TICK] = tick
        row[k.O_LEAVES] = leaves
        row[k.O_DISPLAY] = min(peak, leaves) if peak else leaves
        row[k.O_PEAK] = peak
        row[k.O_TRADED] = 0
        reducible = self._reducible_lots(order)
        row[k.O_CAP] = reducible if reducible is not None else k.UNCAPPED
        row[k.O_ID] = order.order_id
        s.ahead[slot] = float(s.level(sym, side, tick))
        s.activate(slot, k.STATE_RESTING, sym)
        order.slot = slot
        self._slot_orders[slot] = order

    def _park(self, order: SimOrder, sym: int) -> None:
        """Bar mode: the order waits for the next price point (market-like and IOC / FOK as pending
        orders, others resting with no queue ahead)."""
        s = self.state
        slot = order.slot if order.slot >= 0 else s.allocate()
        instrument = order.instrument
        leaves = instrument.quantity_to_lots(order.leaves)
        row = s.orders[slot]
        row[k.O_SIDE] = 0 if order.side is Side.BUY else 1
        row[k.O_TICK] = 0 if order.works_as_market else instrument.price_to_ticks(order.price or ZERO)
        row[k.O_LEAVES] = leaves
        row[k.O_DISPLAY] = leaves
        row[k.O_PEAK] = 0
        reducible = self._reducible_lots(order)
        row[k.O_CAP] = reducible if reducible is not None else k.UNCAPPED
        row[k.O_ID] = order.order_id
        s.ahead[slot] = 0.0
        pending = order.works_as_market or order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK)
        s.activate(slot, k.STATE_PENDING_MARKET if pending else k.STATE_RESTING, sym)
        order.slot = slot
        self._slot_orders[slot] = order

    # ---- fills ---------------------------------------------------------------------------------
    def _fill(self, order: SimOrder, tick: int, lots: int, liquidity: LiquiditySide, ts: int) -> None:
        reducible = self._reducible_lots(order)
        if reducible is not None and lots > reducible:
            # The kernel caps a reduce-only order by the position as it was when the row began; another
            # of our orders filled earlier in the same row (both crossed by one depth update, or hit by
            # one trade) moved it. The fill is cut to what still reduces, and the order then expires
            # (the position is flat). The kernel's copy of the book keeps the lots it already took off
            # the crossing level until the recording next updates that level.
            lots = reducible
            if lots <= 0:
                self._finish(order, OrderStatus.EXPIRED, ExecutionType.EXPIRED, ts, EXPIRED_REDUCE_ONLY)
                return
        instrument = order.instrument
        account = self.accounts[order.account_id]
        price = instrument.ticks_to_price(tick)
        quantity = instrument.lots_to_quantity(lots)
        leaves_before = order.leaves
        rate = account.fees.rate(order.market, liquidity)
        realized = ZERO
        if order.market is Market.SPOT:
            quantity = self._settle_spot(account, order, price, quantity, leaves_before)
            if quantity <= 0:
                self._finish(order, OrderStatus.EXPIRED, ExecutionType.EXPIRED, ts, EXPIRED_BALANCE)
                return
            notional = price * quantity
            if order.side is Side.BUY:
                fee, fee_asset = formulas.fee(quantity, rate), instrument.base_asset
                account.spot.credit(instrument.base_asset, quantity - fee)
            else:
                fee, fee_asset = formulas.fee(notional, rate), instrument.quote_asset
                account.spot.credit(instrument.quote_asset, notional - fee)
        else:
            notional = price * quantity
            fee_asset = instrument.margin_asset or instrument.quote_asset
            fee = formulas.fee(notional, rate)
            effect = account.futures.apply_fill(order.symbol, fee_asset, order.side, price, quantity, fee, ts)
            realized = effect.realized_pnl
            if order.margin_reserved:
                portion = (
                    order.margin_reserved
                    if quantity >= leaves_before
                    else order.margin_reserved * quantity / leaves_before
                )
                account.futures.release_order_margin(order.symbol, portion)
                order.margin_reserved -= portion
        order.filled += quantity
        order.cumulative_quote += notional
        order.status = OrderStatus.FILLED if order.leaves <= 0 else OrderStatus.PARTIALLY_FILLED
        fill = self._make_fill(order, price, quantity, fee, fee_asset, liquidity, ts, realized)
        self._order_update(order, ExecutionType.TRADE, ts, fill=fill)
        if order.market is Market.SPOT:
            self._account_update(
                account, Market.SPOT, AccountUpdateReason.ORDER, ts, [instrument.base_asset, instrument.quote_asset]
            )
        else:
            self._account_update(account, Market.FUTURES, AccountUpdateReason.ORDER, ts, [fee_asset], [order.symbol])
        if order.order_list_id >= 0:
            self._expire_siblings(order, ts)
        if order.leaves <= 0:
            self._finish(order, OrderStatus.FILLED, ExecutionType.TRADE, ts)
        elif quantity < instrument.lots_to_quantity(lots):  # clipped by the balance: the rest cannot be paid
            self._finish(order, OrderStatus.EXPIRED, ExecutionType.EXPIRED, ts, EXPIRED_BALANCE)
        if order.market is Market.FUTURES:
            self._refresh_reduce_only(account, order.symbol, ts)

    def _settle_spot(
        self, account: _Account, order: SimOrder, price: Decimal, quantity: Decimal, leaves_before: Decimal
    ) -> Decimal:
        """Release the order's lock for this fill and pay for it; returns the quantity paid for (a
        market-like BUY whose price moved past its reserve is cut to what the balance covers)."""
        instrument = order.instrument
        lock = order.lock
        shared = order.order_list_id >= 0
        if lock is not None:
            if order.side is Side.SELL:
                release = quantity
            elif order.price is not None and not shared:
                release = order.price * quantity
            else:
                release = lock.amount if quantity >= leaves_before else lock.amount * quantity / leaves_before
            account.spot.release(lock, release)
        if order.side is Side.BUY:
            cost = price * quantity
            free = account.spot.free(instrument.quote_asset)
            if cost > free:
                lots = int(free / (price * instrument.step_size))
                quantity = instrument.lots_to_quantity(lots) if lots > 0 else ZERO
                cost = price * quantity
            if quantity > 0:
                account.spot.debit(instrument.quote_asset, cost)
        else:
            account.spot.debit(instrument.base_asset, quantity)
        return quantity

    # ---- triggers and lists ---------------------------------------------------------------------
    def _on_trigger(self, order: SimOrder, tick: int, ts: int) -> None:
        order.triggered = True
        self._order_update(order, ExecutionType.TRIGGERED, ts)
        if order.order_list_id >= 0:
            self._expire_siblings(order, ts)
        if order.slot >= 0:
            self.state.release(order.slot)
            self._slot_orders.pop(order.slot, None)
            order.slot = -1
        if order.close_position:
            allowed = self._reducible_lots(order) or 0
            if allowed == 0:
                self._finish(order, OrderStatus.EXPIRED, ExecutionType.EXPIRED, ts, EXPIRED_NO_POSITION)
                return
            order.quantity = order.instrument.lots_to_quantity(allowed)
        elif order.reduce_only and self._reducible_lots(order) == 0:
            self._finish(order, OrderStatus.EXPIRED, ExecutionType.EXPIRED, ts, EXPIRED_REDUCE_ONLY)
            return
        self._execute(order, ts)

    def _expire_siblings(self, order: SimOrder, ts: int) -> None:
        for sibling in self._lists.get(order.order_list_id, []):
            if sibling is not order and sibling.is_open:
                self._finish(sibling, OrderStatus.EXPIRED, ExecutionType.EXPIRED, ts, EXPIRED_OCO)
