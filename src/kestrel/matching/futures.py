"""USDⓈ-M events: mark price (triggers on mark, liquidation), funding settlement, leverage and margin type.

Funding settles at each funding time from recorded data: a `FundingRate` event (a settled rate from
history) settles at its own time; otherwise the `MarkPrice` stream's predicted rate `r` settles when its
`next_funding_time` (00/08/16 UTC for 8-hour symbols) is reached. One settlement per symbol per funding
time: a second source for the same time (within a minute) is ignored.
"""

from __future__ import annotations

from decimal import Decimal

from kestrel.core.enums import LiquiditySide, MarginType, Market, OrderStatus, OrderType, Side
from kestrel.core.events import FundingRate, MarkPrice
from kestrel.core.identifiers import ClientOrderId
from kestrel.core.numbers import to_decimal
from kestrel.core.venue import AccountUpdateReason, Balance, ExecutionType, PositionSnapshot
from kestrel.matching import kernel as k
from kestrel.matching.base import EngineEvent, _Account
from kestrel.matching.execution import ExecutionEngine
from kestrel.matching.orders import EXPIRED_GTD, EXPIRED_LIQUIDATION, SimOrder

_FUNDING_DEDUPE_NS = 60 * 1_000_000_000


class FuturesEngine(ExecutionEngine):
    # ---- mark price ------------------------------------------------------------------------------
    def _on_mark(self, event: MarkPrice) -> None:
        sym = self.symbol_index(event.market, event.symbol)
        instrument = self.instruments[sym]
        mark = to_decimal(event.mark_price, "mark price")
        self._marks[event.symbol] = mark
        ts = event.ts_event
        self.now_ns = max(self.now_ns, ts)
        mark_tick = int((mark / instrument.tick_size).to_integral_value())
        self.state.sym_state[sym, k.S_MARK_TICK] = mark_tick
        s = self.state
        s.ctl[k.CTL_OUT_COUNT] = 0
        k.check_triggers(s.orders, s.sym_state, s.out, s.ctl, sym, 1, mark_tick, ts)
        self._process_out()
        if event.next_funding_time_ns > 0:
            self._funding[event.symbol] = (event.next_funding_time_ns, to_decimal(event.funding_rate, "funding rate"))
        self._check_liquidations(ts)

    # ---- funding ---------------------------------------------------------------------------------
    def _on_funding_rate(self, event: FundingRate) -> None:
        mark = to_decimal(event.mark_price, "mark price") if event.mark_price > 0 else self.mark_price(event.symbol)
        self._settle_funding(event.symbol, event.ts_event, to_decimal(event.funding_rate, "funding rate"), mark)

    def _settle_funding(self, symbol: str, funding_ts: int, rate: Decimal, mark: Decimal) -> None:
        last = self._settled_funding.get(symbol)
        if last is not None and abs(funding_ts - last) < _FUNDING_DEDUPE_NS:
            return
        self._settled_funding[symbol] = funding_ts
        if mark <= 0:
            return
        for account in self.accounts.values():
            payment = account.futures.settle_funding(symbol, rate, mark, funding_ts)
            if payment == 0:
                continue
            self.funding_payments.append((funding_ts, account.account_id, symbol, payment))
            position = account.futures.positions[symbol]
            symbols = [symbol] if position.margin_type is MarginType.ISOLATED else []
            self._account_update(
                account, Market.FUTURES, AccountUpdateReason.FUNDING_FEE, funding_ts, [position.margin_asset], symbols
            )
        self._check_liquidations(funding_ts)

    def next_scheduled_ns(self) -> int | None:
        """The next time the engine must act without market data (scheduled funding, GTD expiry)."""
        if not self._funding and not self._gtd_orders:
            return None
        times = [ts for ts, _ in self._funding.values()]
        times.extend(o.good_till_ns for o in self._gtd_orders if o.good_till_ns is not None)
        return min(times) if times else None

    def _open_gtd(self) -> list[SimOrder]:
        return sorted((o for o in self._gtd_orders if o.is_open), key=lambda o: o.order_id)

    def _check_schedule(self, ts: int) -> None:
        if not self._funding and not self._gtd_orders:
            return
        for symbol, (funding_ts, rate) in list(self._funding.items()):
            if funding_ts <= ts:
                del self._funding[symbol]
                self._settle_funding(symbol, funding_ts, rate, self.mark_price(symbol))
        for order in self._open_gtd():
            if order.good_till_ns is not None and order.good_till_ns <= ts:
                self._finish(order, OrderStatus.EXPIRED, ExecutionType.EXPIRED, order.good_till_ns, EXPIRED_GTD)

    def advance_time(self, ts: int) -> list[EngineEvent]:
        """Do the time-driven work due at or before `ts`; returns the engine events it produced."""
        self.now_ns = max(self.now_ns, ts)
        self._check_schedule(ts)
        return self._drain()

    # ---- liquidation -----------------------------------------------------------------------------
    def _check_liquidations(self, ts: int) -> None:
        for account in self.accounts.values():
            if not any(p.quantity != 0 for p in account.futures.positions.values()):
                continue
            doomed = account.futures.positions_to_liquidate()
            if doomed:
                self._liquidate(account, doomed, ts)

    def _liquidate(self, account: _Account, symbols: list[str], ts: int) -> None:
        """Close the positions at mark price, as the exchange's liquidation engine would (simplified:
        one CALCULATED fill at mark; the liquidation fee goes to the insurance fund)."""
        for order in [o for o in account.open_by_client.values() if o.market is Market.FUTURES and o.symbol in symbols]:
            self._finish(order, OrderStatus.EXPIRED, ExecutionType.EXPIRED, ts, EXPIRED_LIQUIDATION)
        for symbol in symbols:
            position = account.futures.positions[symbol]
            if position.quantity == 0:
                continue
            self.liquidations += 1
            instrument = self.instrument(Market.FUTURES, symbol)
            mark = self.mark_price(symbol)
            side = Side.SELL if position.quantity > 0 else Side.BUY
            quantity = abs(position.quantity)
            order = SimOrder(
                order_id=self._new_id(),
                account_id=account.account_id,
                client_order_id=ClientOrderId(f"autoclose-{ts // 1_000_000}"),
                instrument=instrument,
                side=side,
                order_type=OrderType.MARKET,
                quantity=quantity,
                ts_created=ts,
                reduce_only=True,
                ts_updated=ts,
            )
            self.orders[order.order_id] = order
            fee_rate = (
                instrument.liquidation_fee_rate
                if instrument.liquidation_fee_rate is not None
                else self.settings.liquidation_fee_rate
            )
            fee = mark * quantity * fee_rate
            isolated = position.isolated_wallet if position.margin_type is MarginType.ISOLATED else None
            wallet_before = account.futures.wallet(position.margin_asset)
            effect = account.futures.apply_fill(symbol, position.margin_asset, side, mark, quantity, fee, ts)
            loss = wallet_before - account.futures.wallet(position.margin_asset)
            if isolated is not None and loss > isolated:  # an isolated position loses at most its margin
                account.futures.cover_loss(position.margin_asset, loss - isolated)
            order.filled = quantity
            order.cumulative_quote = mark * quantity
            order.status = OrderStatus.FILLED
            fill = self._make_fill(
                order, mark, quantity, fee, position.margin_asset, LiquiditySide.TAKER, ts, effect.realized_pnl
            )
            self._order_update(order, ExecutionType.CALCULATED, ts, fill=fill)
            self._account_update(
                account, Market.FUTURES, AccountUpdateReason.LIQUIDATION, ts, [position.margin_asset], [symbol]
            )

    # ---- settings --------------------------------------------------------------------------------
    def set_leverage(self, account_id: str, symbol: str, leverage: int, ts: int) -> Decimal:
        """Returns the largest position notional allowed at that leverage (`maxNotionalValue`)."""
        instrument = self.instrument(Market.FUTURES, symbol)
        account = self.account(account_id)
        max_notional = account.futures.set_leverage(symbol, instrument.margin_asset or instrument.quote_asset, leverage)
        self.now_ns = max(self.now_ns, ts)
        return max_notional

    def set_margin_type(self, account_id: str, symbol: str, margin_type: MarginType, ts: int) -> list[EngineEvent]:
        instrument = self.instrument(Market.FUTURES, symbol)
        account = self.account(account_id)
        has_orders = any(o.symbol == symbol and o.market is Market.FUTURES for o in account.open_by_client.values())
        asset = instrument.margin_asset or instrument.quote_asset
        account.futures.set_margin_type(symbol, asset, margin_type, has_orders)
        self._account_update(account, Market.FUTURES, AccountUpdateReason.MARGIN_TYPE_CHANGE, ts, [asset], [symbol])
        return self._drain()

    def leverage(self, account_id: str, symbol: str) -> tuple[int, MarginType]:
        instrument = self.instrument(Market.FUTURES, symbol)
        position = self.account(account_id).futures.position(symbol, instrument.margin_asset or instrument.quote_asset)
        return position.leverage, position.margin_type

    def positions(self, account_id: str, symbol: str | None = None) -> list[PositionSnapshot]:
        futures = self.account(account_id).futures
        return [
            futures.snapshot(p)
            for s, p in sorted(futures.positions.items())
            if (symbol is None or s == symbol) and (p.quantity != 0 or symbol is not None)
        ]

    def balances(self, account_id: str, market: Market) -> list[Balance]:
        account = self.account(account_id)
        return list(account.spot.balances() if market is Market.SPOT else account.futures.balances())
