"""The compiled market-data kernel of the matching engine (numba, integer ticks and lots).

Everything that happens once per market event lives here: order-book levels, queue positions of our
resting orders, fills of resting orders by trades and by the book moving through them, and the trigger
checks of conditional orders. Everything that happens once per order (validation, accounting, fees,
margin, reports) lives in Python (`engine.py`), which calls into these functions. The per-event Python
API (`MatchingEngine.apply`) and the batch loop (`run`) use the very same functions, so a fill in a
backtest and a fill in the simulator come from the same code.

Data layout (all int64 unless noted; see docs/matching.md for the rules in prose):

- `table[n, TABLE_COLUMNS]`: market events as rows (one row per depth level, trade, bar price point or
  Python-handled event), sorted by exchange time; `ts_local` (strategy receipt) is non-decreasing too.
- `lots[2, S, 2, W]`: two books (0 = the exchange's, 1 = the strategy's delayed view) per symbol and side
  (0 bid, 1 ask) as dense windows of W ticks starting at the symbol's `base` tick.
- `sym_state[S, SYMBOL_COLUMNS]`: best prices, window bases, last trade, counters.
- `orders[M, ORDER_COLUMNS]` and `ahead[M]` (float64): the exchange side of our active orders.
- `out[R, OUT_COLUMNS]`: fill / trigger records produced by the last call, for Python to account.
- `ctl[CTL_SIZE]`: cursors and counters shared with Python.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# ---- event table ---------------------------------------------------------------------------------
COL_TS_EXCH = 0
COL_TS_LOCAL = 1
COL_KIND = 2
COL_SYMBOL = 3
COL_TICK = 4
COL_LOTS = 5
COL_REF = 6  # index of the Python object of a KIND_PYTHON row
COL_FLAGS = 7
TABLE_COLUMNS = 8

KIND_DEPTH_BID = 1
KIND_DEPTH_ASK = 2
KIND_TRADE_BUY = 3  # aggressor bought (hit the asks)
KIND_TRADE_SELL = 4  # aggressor sold (hit the bids)
KIND_CLEAR_BID = 5  # a snapshot starts: the side is replaced
KIND_CLEAR_ASK = 6
KIND_BAR_POINT = 7  # a price point of a kline's path (bar-level fallback)
KIND_PYTHON = 8  # mark price, funding, kline, ...: handled by Python

FLAG_EXCHANGE = 1  # the exchange processes this row
FLAG_LOCAL = 2  # the strategy's view processes this row
FLAG_NOTIFY_BOOK = 4  # last row of a book message: the strategy may want on_book here
FLAG_NOTIFY_TRADE = 8
FLAG_NOTIFY_OTHER = 16  # Python rows the strategy receives (kline, funding, mark price)

# ---- per-symbol state ----------------------------------------------------------------------------
S_BEST_BID = 0  # + 3 * book
S_BEST_ASK = 1  # + 3 * book
S_BASE = 2  # + 3 * book: tick of window index 0
S_LAST_TICK = 6
S_LAST_TS = 7
S_ORDERS = 8  # active exchange-side orders of this symbol (resting, conditional, pending)
S_BAR_MODE = 9  # 1: bar-level fallback (klines), orders match at the next price point
S_DROPPED = 10  # level updates outside the window, ignored
S_LAST_LOTS = 11
S_MARK_TICK = 12
# Price bounds of our resting orders per side (a superset is fine: they only let the kernel skip rows that
# cannot touch any of our orders); Python refreshes them whenever an order starts or stops resting.
S_BUY_LOW = 13
S_BUY_HIGH = 14
S_SELL_LOW = 15
S_SELL_HIGH = 16
S_WATCHERS = 17  # conditional and pending orders: they need every trade / bar point
SYMBOL_COLUMNS = 18
NO_HIGH = -1
NO_LOW = 1 << 62

NO_PRICE = -1
_MAX_TS = (1 << 63) - 1
NO_BASE = -(1 << 62)
BAR_LOTS = 1 << 50  # the unlimited liquidity of a bar price point

# ---- orders --------------------------------------------------------------------------------------
O_STATE = 0
O_SYMBOL = 1
O_SIDE = 2  # 0 buy, 1 sell
O_TICK = 3  # limit price (0 for market)
O_LEAVES = 4  # lots still to fill
O_DISPLAY = 5  # lots visible on the book (an iceberg's current slice; else = leaves)
O_PEAK = 6  # iceberg slice size (0: not an iceberg)
O_TRADED = 7  # lots traded at our price since the last depth update of our level
O_TRIGGER_TICK = 8
O_TRIGGER_DIRECTION = 9  # +1 fires when price >= trigger, -1 when price <= trigger
O_TRIGGER_SOURCE = 10  # 0 last trade price, 1 mark price
O_TRAIL_PPM = 11  # trailing callback in millionths of price (0: not trailing)
O_ACTIVATION_TICK = 12  # trailing activation price (0: active at once)
O_TRAIL_ACTIVE = 13
O_EXTREME_TICK = 14  # lowest (buy) / highest (sell) price since the trailing stop activated
O_CAP = 15  # most lots this order may still fill (reduce-only: the position), else a large number
O_ID = 16  # the engine's order id
ORDER_COLUMNS = 17

STATE_FREE = 0
STATE_RESTING = 1  # a limit order on the book
STATE_CONDITIONAL = 2  # waiting for its trigger
STATE_PENDING_MARKET = 3  # bar mode: a market order waiting for the next price point
STATE_TRIGGERED = 4  # triggered, waiting for Python to turn it into a working order

UNCAPPED = 1 << 60

# ---- output --------------------------------------------------------------------------------------
OUT_KIND = 0
OUT_SLOT = 1
OUT_TICK = 2
OUT_LOTS = 3
OUT_MAKER = 4
OUT_TS = 5
OUT_COLUMNS = 6
OUT_FILL = 1
OUT_TRIGGER = 2
OUT_EXPIRE = 3  # bar mode: an IOC / FOK order could not fill at the price point

# ---- control block -------------------------------------------------------------------------------
CTL_EXCHANGE_CURSOR = 0
CTL_LOCAL_CURSOR = 1
CTL_OUT_COUNT = 2
CTL_ORDER_SLOTS = 3  # slots in use are < this (a high-water mark)
CTL_ROW = 4  # the row a STATUS_* result refers to
CTL_NOW = 5  # exchange time of the last processed row
CTL_SIZE = 8

STATUS_STOP = 0  # every row up to stop_ts is processed
STATUS_END = 1  # the table is exhausted
STATUS_FILLS = 2  # `out` holds fills / triggers of row CTL_ROW
STATUS_EXCHANGE_PYTHON = 3  # row CTL_ROW is a Python row for the exchange side (cursor not advanced)
STATUS_LOCAL_NOTIFY = 4  # row CTL_ROW reached the strategy (local cursor advanced past it)

# ---- queue models (see docs/matching.md) ---------------------------------------------------------
QUEUE_RISK_AVERSE = 0
QUEUE_POWER = 1
QUEUE_LOG = 2
P_QUEUE_MODEL = 0
P_QUEUE_POWER = 1
PARAMS_SIZE = 4


# ==== book ========================================================================================
@njit(cache=True)
def recenter(lots: np.ndarray, sym_state: np.ndarray, book: int, sym: int, center_tick: int) -> None:
    """Move the window so `center_tick` sits in its middle; levels that fall off are forgotten."""
    width = lots.shape[3]
    old_base = sym_state[sym, S_BASE + 3 * book]
    new_base = center_tick - width // 2
    if new_base < 0:
        new_base = 0
    if old_base == NO_BASE:
        sym_state[sym, S_BASE + 3 * book] = new_base
        return
    shift = new_base - old_base
    if shift == 0:
        return
    for side in range(2):
        row = lots[book, sym, side]
        if abs(shift) >= width:
            row[:] = 0
        elif shift > 0:
            row[: width - shift] = row[shift:].copy()
            row[width - shift :] = 0
        else:
            row[-shift:] = row[: width + shift].copy()
            row[:-shift] = 0
    sym_state[sym, S_BASE + 3 * book] = new_base
    _rescan_best(lots, sym_state, book, sym, 0)
    _rescan_best(lots, sym_state, book, sym, 1)


@njit(cache=True)
def _rescan_best(lots: np.ndarray, sym_state: np.ndarray, book: int, sym: int, side: int) -> None:
    width = lots.shape[3]
    base = sym_state[sym, S_BASE + 3 * book]
    row = lots[book, sym, side]
    best = NO_PRICE
    if side == 0:
        for index in range(width - 1, -1, -1):
            if row[index] > 0:
                best = base + index
                break
    else:
        for index in range(width):
            if row[index] > 0:
                best = base + index
                break
    sym_state[sym, S_BEST_BID + side + 3 * book] = best


@njit(cache=True)
def _keep_in_window(lots: np.ndarray, sym_state: np.ndarray, book: int, sym: int, tick: int) -> None:
    """Recenter when a top-of-book or trade price comes within 1/8 of the window's edge."""
    width = lots.shape[3]
    base = sym_state[sym, S_BASE + 3 * book]
    margin = width // 8
    if base == NO_BASE or tick - base < margin or tick - base >= width - margin:
        recenter(lots, sym_state, book, sym, tick)


@njit(cache=True)
def set_level(lots: np.ndarray, sym_state: np.ndarray, book: int, sym: int, side: int, tick: int, qty: int) -> int:
    """Set the absolute quantity of one level; returns the previous quantity (-1: outside the window)."""
    base = sym_state[sym, S_BASE + 3 * book]
    if base == NO_BASE:
        recenter(lots, sym_state, book, sym, tick)
        base = sym_state[sym, S_BASE + 3 * book]
    width = lots.shape[3]
    index = tick - base
    if index < 0 or index >= width:
        best = sym_state[sym, S_BEST_BID + side + 3 * book]
        better = qty > 0 and (best == NO_PRICE or (side == 0 and tick > best) or (side == 1 and tick < best))
        if not better:
            sym_state[sym, S_DROPPED] += 1
            return -1
        # a new best outside the window: the window was placed by a far-away level; follow the market
        recenter(lots, sym_state, book, sym, tick)
        base = sym_state[sym, S_BASE + 3 * book]
        index = tick - base
    old = lots[book, sym, side, index]
    lots[book, sym, side, index] = qty
    column = S_BEST_BID + side + 3 * book
    best = sym_state[sym, column]
    if side == 0:
        if qty > 0:
            if best == NO_PRICE or tick > best:
                sym_state[sym, column] = tick
                _keep_in_window(lots, sym_state, book, sym, tick)
        elif tick == best:
            j = index - 1
            while j >= 0 and lots[book, sym, 0, j] == 0:
                j -= 1
            sym_state[sym, column] = base + j if j >= 0 else NO_PRICE
    else:
        if qty > 0:
            if best == NO_PRICE or tick < best:
                sym_state[sym, column] = tick
                _keep_in_window(lots, sym_state, book, sym, tick)
        elif tick == best:
            j = index + 1
            while j < width and lots[book, sym, 1, j] == 0:
                j += 1
            sym_state[sym, column] = base + j if j < width else NO_PRICE
    return int(old)


@njit(cache=True)
def level_lots(lots: np.ndarray, sym_state: np.ndarray, book: int, sym: int, side: int, tick: int) -> int:
    base = sym_state[sym, S_BASE + 3 * book]
    if base == NO_BASE:
        return 0
    index = tick - base
    if index < 0 or index >= lots.shape[3]:
        return 0
    return int(lots[book, sym, side, index])


@njit(cache=True)
def clear_side(lots: np.ndarray, sym_state: np.ndarray, book: int, sym: int, side: int) -> None:
    lots[book, sym, side, :] = 0
    sym_state[sym, S_BEST_BID + side + 3 * book] = NO_PRICE


@njit(cache=True)
def set_bar_point(lots: np.ndarray, sym_state: np.ndarray, book: int, sym: int, tick: int) -> None:
    """Bar mode: the book is one price with unlimited quantity on both sides (the previous point's
    level is removed directly: a bar-mode book never holds another level, so no scan is needed)."""
    width = lots.shape[3]
    if sym_state[sym, S_BASE + 3 * book] == NO_BASE:
        recenter(lots, sym_state, book, sym, tick)
    for side in range(2):
        column = S_BEST_BID + side + 3 * book
        best = sym_state[sym, column]
        if best != NO_PRICE:
            index = best - sym_state[sym, S_BASE + 3 * book]
            if 0 <= index < width:
                lots[book, sym, side, index] = 0
            sym_state[sym, column] = NO_PRICE
    _keep_in_window(lots, sym_state, book, sym, tick)
    set_level(lots, sym_state, book, sym, 0, tick, BAR_LOTS)
    set_level(lots, sym_state, book, sym, 1, tick, BAR_LOTS)


@njit(cache=True)
def top_levels(lots: np.ndarray, sym_state: np.ndarray, book: int, sym: int, side: int, depth: int) -> np.ndarray:
    """Up to `depth` (tick, lots) levels from the best outward, as an array of shape (k, 2)."""
    result = np.empty((depth, 2), dtype=np.int64)
    best = sym_state[sym, S_BEST_BID + side + 3 * book]
    if best == NO_PRICE or depth <= 0:
        return result[:0]
    base = sym_state[sym, S_BASE + 3 * book]
    row = lots[book, sym, side]
    width = lots.shape[3]
    index = best - base
    count = 0
    step = -1 if side == 0 else 1
    while 0 <= index < width and count < depth:
        if row[index] > 0:
            result[count, 0] = base + index
            result[count, 1] = row[index]
            count += 1
        index += step
    return result[:count]


@njit(cache=True)
def take_liquidity(
    lots: np.ndarray,
    sym_state: np.ndarray,
    sym: int,
    taker_side: int,
    limit_tick: int,
    max_lots: int,
    fills: np.ndarray,
    consume: bool,
) -> int:
    """Walk the exchange book against an aggressive order; returns the number of (tick, lots) fills.

    `taker_side` 0 buys from the asks, 1 sells into the bids; `limit_tick` <= 0 means no limit. Each
    level is filled at its own price. With `consume` the taken lots leave our copy of the book until
    the recording next updates that level (market impact memory).
    """
    book_side = 1 - taker_side
    base = sym_state[sym, S_BASE]
    best = sym_state[sym, S_BEST_BID + book_side]
    if best == NO_PRICE or max_lots <= 0:
        return 0
    row = lots[0, sym, book_side]
    width = lots.shape[3]
    index = best - base
    step = 1 if book_side == 1 else -1
    remaining = max_lots
    count = 0
    while 0 <= index < width and remaining > 0 and count < fills.shape[0]:
        tick = base + index
        if limit_tick > 0 and ((taker_side == 0 and tick > limit_tick) or (taker_side == 1 and tick < limit_tick)):
            break
        available = row[index]
        if available > 0:
            taken = available if available < remaining else remaining
            fills[count, 0] = tick
            fills[count, 1] = taken
            count += 1
            remaining -= taken
        index += step
    if consume:
        for k in range(count):
            tick = fills[k, 0]
            remaining_at_level = level_lots(lots, sym_state, 0, sym, book_side, tick) - fills[k, 1]
            set_level(lots, sym_state, 0, sym, book_side, tick, remaining_at_level)
    return count


# ==== queue models ================================================================================
@njit(cache=True)
def queue_on_depth(ahead: float, old: int, new: int, traded: int, params: np.ndarray) -> float:
    """Queue ahead of our order after its level changed from `old` to `new` lots.

    Growth joins behind us. A decrease not explained by the trades already counted (`traded`) is
    cancellations; the model decides which share of them were ahead of us:
    - risk averse: none, unless the level is now smaller than our queue (then the queue is the level);
    - power / log: the share behind us is f(back) / (f(back) + f(front)) with f(x) = x**n or log(1 + x)
      (the probabilistic models of hftbacktest's documentation).
    """
    if new >= old:
        return ahead if ahead < new else float(new)
    change = float(old - new - traded)
    if change <= 0.0:
        return ahead if ahead < new else float(new)
    model = int(params[P_QUEUE_MODEL])
    if model == QUEUE_RISK_AVERSE:
        estimate = ahead
    else:
        front = ahead
        back = float(old) - ahead
        if back < 0.0:
            back = 0.0
        if model == QUEUE_POWER:
            power = params[P_QUEUE_POWER]
            f_front = front**power
            f_back = back**power
        else:
            f_front = math.log(1.0 + front)
            f_back = math.log(1.0 + back)
        total = f_front + f_back
        behind_share = f_back / total if total > 0.0 else 0.5
        estimate = front - (1.0 - behind_share) * change + min(back - behind_share * change, 0.0)
    if estimate > new:
        estimate = float(new)
    if estimate < 0.0:
        estimate = 0.0
    return estimate


# ==== resting orders ==============================================================================
@njit(cache=True)
def _record(out: np.ndarray, ctl: np.ndarray, kind: int, slot: int, tick: int, qty: int, maker: int, ts: int) -> None:
    n = ctl[CTL_OUT_COUNT]
    out[n, OUT_KIND] = kind
    out[n, OUT_SLOT] = slot
    out[n, OUT_TICK] = tick
    out[n, OUT_LOTS] = qty
    out[n, OUT_MAKER] = maker
    out[n, OUT_TS] = ts
    ctl[CTL_OUT_COUNT] = n + 1


@njit(cache=True)
def fill_order(
    orders: np.ndarray,
    ahead: np.ndarray,
    lots: np.ndarray,
    sym_state: np.ndarray,
    out: np.ndarray,
    ctl: np.ndarray,
    slot: int,
    tick: int,
    qty: int,
    maker: int,
    ts: int,
) -> int:
    """Fill up to `qty` lots of order `slot` at `tick`; returns the lots filled (capped by display,
    leaves and the reduce-only cap). An exhausted iceberg slice is replaced by the next one at the
    back of the queue; a finished order frees its slot."""
    limit = orders[slot, O_DISPLAY]
    if orders[slot, O_CAP] < limit:
        limit = orders[slot, O_CAP]
    if qty > limit:
        qty = limit
    if qty <= 0:
        return 0
    orders[slot, O_LEAVES] -= qty
    orders[slot, O_DISPLAY] -= qty
    orders[slot, O_CAP] -= qty
    _record(out, ctl, OUT_FILL, slot, tick, qty, maker, ts)
    sym = orders[slot, O_SYMBOL]
    if orders[slot, O_LEAVES] <= 0:
        orders[slot, O_STATE] = STATE_FREE
        sym_state[sym, S_ORDERS] -= 1
    elif orders[slot, O_DISPLAY] <= 0 and orders[slot, O_PEAK] > 0:
        peak = orders[slot, O_PEAK]
        leaves = orders[slot, O_LEAVES]
        orders[slot, O_DISPLAY] = peak if peak < leaves else leaves
        ahead[slot] = float(level_lots(lots, sym_state, 0, sym, orders[slot, O_SIDE], orders[slot, O_TICK]))
        orders[slot, O_TRADED] = 0
    return qty


@njit(cache=True)
def _fill_crossed(
    orders: np.ndarray,
    ahead: np.ndarray,
    lots: np.ndarray,
    sym_state: np.ndarray,
    out: np.ndarray,
    ctl: np.ndarray,
    slot: int,
    ts: int,
) -> None:
    """The opposite best crossed our resting price: we trade, as maker at our price, against the
    crossing levels (which are consumed from our copy of the book)."""
    sym = orders[slot, O_SYMBOL]
    side = orders[slot, O_SIDE]
    tick = orders[slot, O_TICK]
    opposite = 1 - side
    while orders[slot, O_STATE] == STATE_RESTING:
        best = sym_state[sym, S_BEST_BID + opposite]
        if best == NO_PRICE or (side == 0 and best > tick) or (side == 1 and best < tick):
            return
        available = level_lots(lots, sym_state, 0, sym, opposite, best)
        filled = fill_order(orders, ahead, lots, sym_state, out, ctl, slot, tick, available, 1, ts)
        if filled <= 0:
            return
        set_level(lots, sym_state, 0, sym, opposite, best, available - filled)


@njit(cache=True)
def _on_depth(
    orders: np.ndarray,
    ahead: np.ndarray,
    lots: np.ndarray,
    sym_state: np.ndarray,
    out: np.ndarray,
    ctl: np.ndarray,
    params: np.ndarray,
    sym: int,
    side: int,
    tick: int,
    old: int,
    new: int,
    ts: int,
) -> None:
    for slot in range(ctl[CTL_ORDER_SLOTS]):
        if orders[slot, O_STATE] != STATE_RESTING or orders[slot, O_SYMBOL] != sym:
            continue
        order_side = orders[slot, O_SIDE]
        if order_side == side and orders[slot, O_TICK] == tick and old >= 0:
            ahead[slot] = queue_on_depth(ahead[slot], old, new, orders[slot, O_TRADED], params)
            orders[slot, O_TRADED] = 0
        if order_side != side:
            best = sym_state[sym, S_BEST_BID + side]
            order_tick = orders[slot, O_TICK]
            if best != NO_PRICE and (
                (order_side == 0 and best <= order_tick) or (order_side == 1 and best >= order_tick)
            ):
                _fill_crossed(orders, ahead, lots, sym_state, out, ctl, slot, ts)


@njit(cache=True)
def _depth_touches(sym_state: np.ndarray, sym: int, side: int, tick: int, qty: int) -> bool:
    """Whether a depth row can matter to our resting orders: it is at one of their levels (queue), or a
    new level crossing one of them (fill)."""
    if side == 0:
        return (sym_state[sym, S_BUY_LOW] <= tick <= sym_state[sym, S_BUY_HIGH]) or (
            qty > 0 and tick >= sym_state[sym, S_SELL_LOW]
        )
    return (sym_state[sym, S_SELL_LOW] <= tick <= sym_state[sym, S_SELL_HIGH]) or (
        qty > 0 and tick <= sym_state[sym, S_BUY_HIGH]
    )


@njit(cache=True)
def _trail_fires(orders: np.ndarray, slot: int, price: int) -> bool:
    side = orders[slot, O_SIDE]
    if orders[slot, O_TRAIL_ACTIVE] == 0:
        activation = orders[slot, O_ACTIVATION_TICK]
        if activation > 0 and ((side == 0 and price > activation) or (side == 1 and price < activation)):
            return False
        orders[slot, O_TRAIL_ACTIVE] = 1
        orders[slot, O_EXTREME_TICK] = price
        return False
    extreme = orders[slot, O_EXTREME_TICK]
    ppm = orders[slot, O_TRAIL_PPM]
    if side == 0:
        if price < extreme:
            orders[slot, O_EXTREME_TICK] = price
            return False
        return bool(price * 1_000_000 >= extreme * (1_000_000 + ppm))
    if price > extreme:
        orders[slot, O_EXTREME_TICK] = price
        return False
    return bool(price * 1_000_000 <= extreme * (1_000_000 - ppm))


@njit(cache=True)
def check_triggers(
    orders: np.ndarray,
    sym_state: np.ndarray,
    out: np.ndarray,
    ctl: np.ndarray,
    sym: int,
    source: int,
    price: int,
    ts: int,
) -> None:
    """Fire the conditional orders of `sym` watching `source` (0 last, 1 mark) whose condition holds."""
    for slot in range(ctl[CTL_ORDER_SLOTS]):
        if orders[slot, O_STATE] != STATE_CONDITIONAL or orders[slot, O_SYMBOL] != sym:
            continue
        if orders[slot, O_TRIGGER_SOURCE] != source:
            continue
        if orders[slot, O_TRAIL_PPM] > 0:
            fires = _trail_fires(orders, slot, price)
        else:
            trigger = orders[slot, O_TRIGGER_TICK]
            direction = orders[slot, O_TRIGGER_DIRECTION]
            fires = (direction > 0 and price >= trigger) or (direction < 0 and price <= trigger)
        if fires:
            orders[slot, O_STATE] = STATE_TRIGGERED
            _record(out, ctl, OUT_TRIGGER, slot, price, 0, 0, ts)


@njit(cache=True)
def _on_trade(
    orders: np.ndarray,
    ahead: np.ndarray,
    lots: np.ndarray,
    sym_state: np.ndarray,
    out: np.ndarray,
    ctl: np.ndarray,
    sym: int,
    aggressor: int,
    tick: int,
    qty: int,
    ts: int,
) -> None:
    passive = 1 - aggressor
    for slot in range(ctl[CTL_ORDER_SLOTS]):
        if orders[slot, O_STATE] != STATE_RESTING or orders[slot, O_SYMBOL] != sym:
            continue
        if orders[slot, O_SIDE] != passive:
            continue
        order_tick = orders[slot, O_TICK]
        through = (passive == 0 and tick < order_tick) or (passive == 1 and tick > order_tick)
        if through:
            # the aggressor reached a worse price: with us in the book it would have hit us first
            ahead[slot] = 0.0
            fill_order(orders, ahead, lots, sym_state, out, ctl, slot, order_tick, qty, 1, ts)
        elif tick == order_tick:
            before = ahead[slot]
            orders[slot, O_TRADED] += qty
            remaining = before - qty
            if remaining < 0.0:
                ahead[slot] = 0.0
                excess = int(-remaining)  # truncation of a positive value: the whole lots beyond the queue
                if excess > 0:
                    fill_order(orders, ahead, lots, sym_state, out, ctl, slot, order_tick, excess, 1, ts)
            else:
                ahead[slot] = remaining
    check_triggers(orders, sym_state, out, ctl, sym, 0, tick, ts)


@njit(cache=True)
def _on_bar_point(
    orders: np.ndarray,
    ahead: np.ndarray,
    lots: np.ndarray,
    sym_state: np.ndarray,
    out: np.ndarray,
    ctl: np.ndarray,
    sym: int,
    tick: int,
    ts: int,
) -> None:
    for slot in range(ctl[CTL_ORDER_SLOTS]):
        if orders[slot, O_SYMBOL] != sym:
            continue
        state = orders[slot, O_STATE]
        if state == STATE_PENDING_MARKET:
            limit = orders[slot, O_TICK]
            side = orders[slot, O_SIDE]
            if limit > 0 and ((side == 0 and tick > limit) or (side == 1 and tick < limit)):
                orders[slot, O_STATE] = STATE_TRIGGERED  # out of the loop until Python expires it
                _record(out, ctl, OUT_EXPIRE, slot, tick, 0, 0, ts)
                continue
            orders[slot, O_DISPLAY] = orders[slot, O_LEAVES]
            fill_order(orders, ahead, lots, sym_state, out, ctl, slot, tick, orders[slot, O_LEAVES], 0, ts)
        elif state == STATE_RESTING:
            order_tick = orders[slot, O_TICK]
            side = orders[slot, O_SIDE]
            if (side == 0 and tick <= order_tick) or (side == 1 and tick >= order_tick):
                while orders[slot, O_STATE] == STATE_RESTING:
                    if fill_order(orders, ahead, lots, sym_state, out, ctl, slot, order_tick, UNCAPPED, 1, ts) <= 0:
                        break
    check_triggers(orders, sym_state, out, ctl, sym, 0, tick, ts)


@njit(cache=True)
def refresh_bounds(orders: np.ndarray, sym_state: np.ndarray, ctl: np.ndarray, sym: int) -> None:
    """Recompute the resting-order price bounds and the watcher count of one symbol."""
    buy_low, buy_high, sell_low, sell_high, watchers = NO_LOW, NO_HIGH, NO_LOW, NO_HIGH, 0
    for slot in range(ctl[CTL_ORDER_SLOTS]):
        state = orders[slot, O_STATE]
        if state == STATE_FREE or orders[slot, O_SYMBOL] != sym:
            continue
        if state != STATE_RESTING:
            watchers += 1
            continue
        tick = orders[slot, O_TICK]
        if orders[slot, O_SIDE] == 0:
            buy_low = min(buy_low, tick)
            buy_high = max(buy_high, tick)
        else:
            sell_low = min(sell_low, tick)
            sell_high = max(sell_high, tick)
    sym_state[sym, S_BUY_LOW] = buy_low
    sym_state[sym, S_BUY_HIGH] = buy_high
    sym_state[sym, S_SELL_LOW] = sell_low
    sym_state[sym, S_SELL_HIGH] = sell_high
    sym_state[sym, S_WATCHERS] = watchers


# ==== one row =====================================================================================
@njit(cache=True)
def apply_exchange_row(
    table: np.ndarray,
    row: int,
    ctl: np.ndarray,
    sym_state: np.ndarray,
    lots: np.ndarray,
    orders: np.ndarray,
    ahead: np.ndarray,
    out: np.ndarray,
    params: np.ndarray,
) -> None:
    """Apply one market row to the exchange book and our orders there (not Python rows)."""
    kind = table[row, COL_KIND]
    sym = table[row, COL_SYMBOL]
    tick = table[row, COL_TICK]
    qty = table[row, COL_LOTS]
    ts = table[row, COL_TS_EXCH]
    ctl[CTL_NOW] = ts
    has_orders = sym_state[sym, S_ORDERS] > 0
    if kind == KIND_DEPTH_BID or kind == KIND_DEPTH_ASK:
        side = kind - KIND_DEPTH_BID
        old = set_level(lots, sym_state, 0, sym, side, tick, qty)
        if has_orders and _depth_touches(sym_state, sym, side, tick, qty):
            _on_depth(orders, ahead, lots, sym_state, out, ctl, params, sym, side, tick, old, qty, ts)
    elif kind == KIND_TRADE_BUY or kind == KIND_TRADE_SELL:
        sym_state[sym, S_LAST_TICK] = tick
        sym_state[sym, S_LAST_LOTS] = qty
        sym_state[sym, S_LAST_TS] = ts
        if sym_state[sym, S_BASE] == NO_BASE:
            recenter(lots, sym_state, 0, sym, tick)
        touches = (kind == KIND_TRADE_SELL and tick <= sym_state[sym, S_BUY_HIGH]) or (
            kind == KIND_TRADE_BUY and tick >= sym_state[sym, S_SELL_LOW]
        )
        if has_orders and (touches or sym_state[sym, S_WATCHERS] > 0):
            _on_trade(orders, ahead, lots, sym_state, out, ctl, sym, kind - KIND_TRADE_BUY, tick, qty, ts)
    elif kind == KIND_CLEAR_BID or kind == KIND_CLEAR_ASK:
        clear_side(lots, sym_state, 0, sym, kind - KIND_CLEAR_BID)
    elif kind == KIND_BAR_POINT:
        set_bar_point(lots, sym_state, 0, sym, tick)
        sym_state[sym, S_LAST_TICK] = tick
        sym_state[sym, S_LAST_TS] = ts
        if has_orders:
            _on_bar_point(orders, ahead, lots, sym_state, out, ctl, sym, tick, ts)


@njit(cache=True)
def apply_local_row(table: np.ndarray, row: int, sym_state: np.ndarray, lots: np.ndarray) -> None:
    """Apply one market row to the strategy's (delayed) view of the book."""
    kind = table[row, COL_KIND]
    sym = table[row, COL_SYMBOL]
    tick = table[row, COL_TICK]
    if kind == KIND_DEPTH_BID or kind == KIND_DEPTH_ASK:
        set_level(lots, sym_state, 1, sym, kind - KIND_DEPTH_BID, tick, table[row, COL_LOTS])
    elif kind == KIND_CLEAR_BID or kind == KIND_CLEAR_ASK:
        clear_side(lots, sym_state, 1, sym, kind - KIND_CLEAR_BID)
    elif kind == KIND_BAR_POINT:
        set_bar_point(lots, sym_state, 1, sym, tick)


# ==== the batch loop ==============================================================================
@njit(cache=True)
def _scan_best(lots: np.ndarray, sym_state: np.ndarray, book: int, sym: int, side: int, index: int) -> int:
    """The best price after the level at window `index` (the best) was removed."""
    width = lots.shape[3]
    base = sym_state[sym, S_BASE + 3 * book]
    if side == 0:
        j = index - 1
        while j >= 0 and lots[book, sym, 0, j] == 0:
            j -= 1
        return int(base + j) if j >= 0 else NO_PRICE
    j = index + 1
    while j < width and lots[book, sym, 1, j] == 0:
        j += 1
    return int(base + j) if j < width else NO_PRICE


@njit(cache=True)
def run(
    table: np.ndarray,
    ctl: np.ndarray,
    sym_state: np.ndarray,
    lots: np.ndarray,
    orders: np.ndarray,
    ahead: np.ndarray,
    out: np.ndarray,
    params: np.ndarray,
    stop_ts: int,
    notify_mask: int,
) -> int:
    """Process rows in time order until something needs Python, or every row up to `stop_ts` is done.

    The exchange cursor handles each row at its exchange time (book 0 and our orders), the local cursor
    at its local time (book 1, the strategy's view); at equal times the exchange goes first. Returns a
    STATUS_* code (CTL_ROW names the row).

    The common case (a depth level inside the window, no order of ours on that symbol) is written out
    here rather than calling `set_level`: numba's calls cost ~10x the work of the update itself. The
    result is the same as `apply_exchange_row` / `apply_local_row`, which the per-event path uses.
    """
    n = table.shape[0]
    width = lots.shape[3]
    margin = width // 8
    exchange = ctl[CTL_EXCHANGE_CURSOR]
    local = ctl[CTL_LOCAL_CURSOR]
    ctl[CTL_OUT_COUNT] = 0
    status = STATUS_STOP
    while True:
        ts_exchange = table[exchange, COL_TS_EXCH] if exchange < n else _MAX_TS
        ts_local = table[local, COL_TS_LOCAL] if local < n else _MAX_TS
        if exchange >= n and local >= n:
            status = STATUS_END
            break
        if ts_exchange <= ts_local:
            if ts_exchange > stop_ts:
                break
            book = 0
            row = exchange
            exchange += 1
            if not table[row, COL_FLAGS] & FLAG_EXCHANGE:
                continue
        else:
            if ts_local > stop_ts:
                break
            book = 1
            row = local
            local += 1
            if not table[row, COL_FLAGS] & FLAG_LOCAL:
                continue
        kind = table[row, COL_KIND]
        if kind == KIND_DEPTH_BID or kind == KIND_DEPTH_ASK:
            sym = table[row, COL_SYMBOL]
            tick = table[row, COL_TICK]
            qty = table[row, COL_LOTS]
            side = kind - KIND_DEPTH_BID
            base = sym_state[sym, S_BASE + 3 * book]
            index = tick - base
            if base == NO_BASE or index < margin or index >= width - margin:
                old = set_level(lots, sym_state, book, sym, side, tick, qty)  # window work: the slow path
            else:
                old = lots[book, sym, side, index]
                lots[book, sym, side, index] = qty
                column = S_BEST_BID + side + 3 * book
                best = sym_state[sym, column]
                if qty > 0:
                    if best == NO_PRICE or (side == 0 and tick > best) or (side == 1 and tick < best):
                        sym_state[sym, column] = tick
                elif tick == best:
                    sym_state[sym, column] = _scan_best(lots, sym_state, book, sym, side, index)
            if book == 0 and sym_state[sym, S_ORDERS] > 0:
                # `_depth_touches`, written out: only rows at our levels, or crossing one, reach `_on_depth`
                if side == 0:
                    touches = (sym_state[sym, S_BUY_LOW] <= tick <= sym_state[sym, S_BUY_HIGH]) or (
                        qty > 0 and tick >= sym_state[sym, S_SELL_LOW]
                    )
                else:
                    touches = (sym_state[sym, S_SELL_LOW] <= tick <= sym_state[sym, S_SELL_HIGH]) or (
                        qty > 0 and tick <= sym_state[sym, S_BUY_HIGH]
                    )
                if touches:
                    ts = table[row, COL_TS_EXCH]
                    _on_depth(orders, ahead, lots, sym_state, out, ctl, params, sym, side, tick, old, qty, ts)
        elif kind == KIND_PYTHON:
            if book == 0:
                exchange -= 1  # Python handles it and moves the cursor
                ctl[CTL_ROW] = row
                ctl[CTL_NOW] = ts_exchange
                status = STATUS_EXCHANGE_PYTHON
                break
        elif book == 0:
            apply_exchange_row(table, row, ctl, sym_state, lots, orders, ahead, out, params)
        else:
            apply_local_row(table, row, sym_state, lots)
        if book == 0:
            ctl[CTL_NOW] = ts_exchange
            if ctl[CTL_OUT_COUNT] > 0:
                ctl[CTL_ROW] = row
                status = STATUS_FILLS
                break
        elif table[row, COL_FLAGS] & notify_mask:
            ctl[CTL_ROW] = row
            status = STATUS_LOCAL_NOTIFY
            break
    ctl[CTL_EXCHANGE_CURSOR] = exchange
    ctl[CTL_LOCAL_CURSOR] = local
    return status
