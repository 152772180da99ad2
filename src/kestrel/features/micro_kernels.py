"""Compiled microstructure kernels: one handler per event kind, all state in caller-owned arrays.

State: `f` float64 slots, `n` int64 slots (times, counts), `book` (4 × 2·capacity: bid keys = price,
bid quantities, ask keys = −price, ask quantities; each side ascending, so the best level is last),
parameters `p`, outputs `o`.
Every handler first advances time (decays every windowed accumulator from the previous event to this
one: exp(−Δt/τ) per window), then folds the event in, then recomputes the whole output vector, so the
features after an event are the state as of that event — identical whether called once per event
(streaming) or in a compiled loop over a table (batch).

Windows are exponential decays with time constants τ = the configured windows (50 ms … 1 min); sums
below are Σ value·exp(−(t − t_i)/τ) over past events i.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# ---- parameters p --------------------------------------------------------------------------------
P_WINDOWS = 0  # number of windows W (≤ MAX_WINDOWS)
P_TAU = 1  # τ_0 … τ_{W−1} in ns
MAX_WINDOWS = 8
P_LIQUIDITY = P_TAU + MAX_WINDOWS  # depth_top1 (USDT) giving liq_score 1
P_MAX_LATENCY = P_LIQUIDITY + 1  # ms
P_MAX_OFFSET = P_LIQUIDITY + 2  # ms
P_SIZE = P_LIQUIDITY + 3

# ---- integer state n -----------------------------------------------------------------------------
N_LAST_TS, N_BID_COUNT, N_ASK_COUNT, N_EVENTS = 0, 1, 2, 3
N_LAST_EVENT_TS = 4  # per kind 0..7: last exchange time (order check)
N_NEXT_FUNDING = 12
N_SIZE = 13

# ---- float state f: scalars ----------------------------------------------------------------------
F_BID, F_BID_QTY, F_ASK, F_ASK_QTY, F_MID = 0, 1, 2, 3, 4
F_FLOW = 5  # signed notional traded since the last top-of-book update (Kyle's λ)
F_TRADED = 6  # base quantity traded since the last depth diff (cancel / new)
F_LAST_PRICE = 7
F_FUNDING, F_SETTLED_FUNDING, F_MARK, F_INDEX = 8, 9, 10, 11
F_OI, F_LATENCY = 12, 13
F_LAT_N, F_LAT_SUM, F_LAT_SQ = 14, 15, 16  # decayed latency moments over the longest window
F_TIMESTAMP_OK = 17
F_BOOK_MID = 18
F_QI5, F_QI20, F_SLOPE_BID, F_SLOPE_ASK, F_VOID = 19, 20, 21, 22, 23
F_PREV_MID = 24
F_ACC = 32  # windowed accumulators start here: accumulator k of window w at F_ACC + k·MAX_WINDOWS + w
A_OFI, A_MID, A_MID_N, A_SIGN, A_COUNT, A_PQ, A_Q, A_ADD, A_CANCEL = 0, 1, 2, 3, 4, 5, 6, 7, 8
A_XY, A_XX, A_RV, A_LIQ, A_OI, A_OI_N = 9, 10, 11, 12, 13, 14
ACCUMULATORS = 15
F_SIZE = F_ACC + ACCUMULATORS * MAX_WINDOWS

# ---- outputs o -----------------------------------------------------------------------------------
O_SPREAD, O_QI, O_MICROPRICE, O_LIQ_SCORE = 0, 1, 2, 3
O_WINDOWED = 4  # 7 per window: ofi, dmid, trade_sign, trade_rate, vwap_distance, kyle_lambda, cancel_new
PER_WINDOW = 7
KIND_TOP, KIND_TRADE, KIND_RESET, KIND_DIFF, KIND_MARK, KIND_OI, KIND_LIQ, KIND_FUNDING = 0, 1, 2, 3, 4, 5, 6, 7
SLOPE_LEVELS = 10
NEAR_BAND_BPS = 5.0
FAR_BAND_BPS = 25.0


def output_size(windows: int) -> int:
    return O_WINDOWED + PER_WINDOW * windows + 16


@njit(cache=True, nogil=True, inline="always")
def _acc(k: int, w: int) -> int:
    return F_ACC + k * MAX_WINDOWS + w


@njit(cache=True, nogil=True, error_model="numpy")
def _advance(f: np.ndarray, n: np.ndarray, p: np.ndarray, kind: int, ts_init: int, ts_event: int) -> None:
    windows = int(p[P_WINDOWS])
    dt = float(ts_init - n[N_LAST_TS]) if n[N_EVENTS] > 0 else 0.0
    if dt > 0.0:
        for w in range(windows):
            decay = math.exp(-dt / p[P_TAU + w])
            for k in range(ACCUMULATORS):
                f[_acc(k, w)] *= decay
        longest = math.exp(-dt / p[P_TAU + windows - 1])
        f[F_LAT_N] *= longest
        f[F_LAT_SUM] *= longest
        f[F_LAT_SQ] *= longest
    if ts_init > n[N_LAST_TS]:
        n[N_LAST_TS] = ts_init
    n[N_EVENTS] += 1
    ok = 1.0
    if ts_event != ts_init:  # a real exchange time: latency and timestamp consistency
        latency = (ts_init - ts_event) / 1e6
        f[F_LATENCY] = latency
        f[F_LAT_N] += 1.0
        f[F_LAT_SUM] += latency
        f[F_LAT_SQ] += latency * latency
        if latency > p[P_MAX_LATENCY] or abs(latency) > p[P_MAX_OFFSET]:
            ok = 0.0
        if ts_event < n[N_LAST_EVENT_TS + kind]:
            ok = 0.0  # out of order within its stream
        else:
            n[N_LAST_EVENT_TS + kind] = ts_event
    f[F_TIMESTAMP_OK] = ok


@njit(cache=True, nogil=True, error_model="numpy")
def _outputs(f: np.ndarray, p: np.ndarray, o: np.ndarray) -> None:
    windows = int(p[P_WINDOWS])
    bid, ask, bq, aq, mid = f[F_BID], f[F_ASK], f[F_BID_QTY], f[F_ASK_QTY], f[F_MID]
    o[O_SPREAD] = (ask - bid) / mid * 1e4
    o[O_QI] = (bq - aq) / (bq + aq) if bq + aq > 0.0 else math.nan
    o[O_MICROPRICE] = ((ask * bq + bid * aq) / (bq + aq) - mid) / mid * 1e4 if bq + aq > 0.0 else math.nan
    o[O_LIQ_SCORE] = min(min(bq, aq) * mid / p[P_LIQUIDITY], 1.0)
    for w in range(windows):
        base = O_WINDOWED + PER_WINDOW * w
        tau_s = p[P_TAU + w] / 1e9
        o[base] = f[_acc(A_OFI, w)]
        mean_mid = f[_acc(A_MID, w)] / f[_acc(A_MID_N, w)] if f[_acc(A_MID_N, w)] > 0.0 else math.nan
        o[base + 1] = (mid - mean_mid) / mean_mid * 1e4
        count = f[_acc(A_COUNT, w)]
        o[base + 2] = f[_acc(A_SIGN, w)] / count if count > 1e-12 else 0.0
        o[base + 3] = count / tau_s
        quantity = f[_acc(A_Q, w)]
        vwap = f[_acc(A_PQ, w)] / quantity if quantity > 0.0 else math.nan
        o[base + 4] = (mid - vwap) / vwap * 1e4
        xx = f[_acc(A_XX, w)]
        o[base + 5] = f[_acc(A_XY, w)] / xx * 1e6 if xx > 0.0 else math.nan  # bps per 1M USDT
        added = f[_acc(A_ADD, w)]
        o[base + 6] = f[_acc(A_CANCEL, w)] / added if added > 0.0 else math.nan
    tail = O_WINDOWED + PER_WINDOW * windows
    last = windows - 1
    fast = f[_acc(A_MID, 0)] / f[_acc(A_MID_N, 0)] if f[_acc(A_MID_N, 0)] > 0.0 else math.nan
    slow = f[_acc(A_MID, last)] / f[_acc(A_MID_N, last)] if f[_acc(A_MID_N, last)] > 0.0 else math.nan
    o[tail] = (fast - slow) / mid * 1e4
    rv_fast = f[_acc(A_RV, 0)] / p[P_TAU]
    rv_slow = f[_acc(A_RV, last)] / p[P_TAU + last]
    o[tail + 1] = math.sqrt(rv_fast / rv_slow) if rv_slow > 0.0 else math.nan
    o[tail + 2] = f[F_QI5]
    o[tail + 3] = f[F_QI20]
    o[tail + 4] = f[F_SLOPE_BID]
    o[tail + 5] = f[F_SLOPE_ASK]
    o[tail + 6] = f[F_VOID]
    o[tail + 7] = f[F_FUNDING]
    o[tail + 8] = f[F_FUNDING] - f[F_SETTLED_FUNDING]
    o[tail + 9] = (f[F_MARK] - f[F_INDEX]) / f[F_INDEX] * 1e4
    oi_mean = f[_acc(A_OI, last)] / f[_acc(A_OI_N, last)] if f[_acc(A_OI_N, last)] > 0.0 else math.nan
    o[tail + 10] = (f[F_OI] - oi_mean) / oi_mean
    o[tail + 11] = f[_acc(A_LIQ, last)] / (p[P_TAU + last] / 1e9)
    o[tail + 12] = f[F_LATENCY]
    lat_n = f[F_LAT_N]
    if lat_n > 1.0:
        mean = f[F_LAT_SUM] / lat_n
        variance = f[F_LAT_SQ] / lat_n - mean * mean
        o[tail + 13] = (f[F_LATENCY] - mean) / math.sqrt(variance) if variance > 1e-12 else 0.0
        o[tail + 14] = mean
    else:
        o[tail + 13] = math.nan
        o[tail + 14] = f[F_LATENCY]
    o[tail + 15] = f[F_TIMESTAMP_OK]


@njit(cache=True, nogil=True, error_model="numpy")
def on_top(
    f: np.ndarray, n: np.ndarray, p: np.ndarray, o: np.ndarray, ts_init: int, ts_event: int,
    bid: float, bid_qty: float, ask: float, ask_qty: float,
) -> None:  # fmt: skip
    """Best bid/ask: OFI (Cont, Kukanov, Stoikov), mid averages, realised variance, Kyle's λ sample."""
    _advance(f, n, p, KIND_TOP, ts_init, ts_event)
    windows = int(p[P_WINDOWS])
    mid = 0.5 * (bid + ask)
    previous_mid = f[F_MID]
    if previous_mid > 0.0:
        e = 0.0
        if bid >= f[F_BID]:
            e += bid_qty
        if bid <= f[F_BID]:
            e -= f[F_BID_QTY]
        if ask <= f[F_ASK]:
            e -= ask_qty
        if ask >= f[F_ASK]:
            e += f[F_ASK_QTY]
        r = math.log(mid / previous_mid) * 1e4
        x = f[F_FLOW]
        for w in range(windows):
            f[_acc(A_OFI, w)] += e
            f[_acc(A_RV, w)] += r * r
            f[_acc(A_XY, w)] += x * r
            f[_acc(A_XX, w)] += x * x
    f[F_FLOW] = 0.0
    for w in range(windows):
        f[_acc(A_MID, w)] += mid
        f[_acc(A_MID_N, w)] += 1.0
    f[F_BID], f[F_BID_QTY], f[F_ASK], f[F_ASK_QTY], f[F_MID] = bid, bid_qty, ask, ask_qty, mid
    _outputs(f, p, o)


@njit(cache=True, nogil=True, error_model="numpy")
def on_trade(
    f: np.ndarray, n: np.ndarray, p: np.ndarray, o: np.ndarray, ts_init: int, ts_event: int,
    price: float, quantity: float, seller_initiated: bool,
) -> None:  # fmt: skip
    """A trade: sign (aggressor side), intensity, VWAP, signed flow for Kyle's λ, traded volume."""
    _advance(f, n, p, KIND_TRADE, ts_init, ts_event)
    sign = -1.0 if seller_initiated else 1.0
    for w in range(int(p[P_WINDOWS])):
        f[_acc(A_SIGN, w)] += sign
        f[_acc(A_COUNT, w)] += 1.0
        f[_acc(A_PQ, w)] += price * quantity
        f[_acc(A_Q, w)] += quantity
    f[F_FLOW] += sign * price * quantity
    f[F_TRADED] += quantity
    f[F_LAST_PRICE] = price
    if not f[F_MID] > 0.0:  # no quote seen yet: the trade price stands in for the mid
        f[F_MID] = price
    _outputs(f, p, o)


@njit(cache=True, nogil=True, error_model="numpy")
def _search(keys: np.ndarray, count: int, key: float) -> int:
    low = 0
    high = count
    while low < high:
        middle = (low + high) // 2
        if keys[middle] < key:
            low = middle + 1
        else:
            high = middle
    return low


@njit(cache=True, nogil=True, error_model="numpy")
def _apply_side(
    keys: np.ndarray, quantities: np.ndarray, count: int, levels: np.ndarray, sign: float, keep: int
) -> tuple[int, float, float]:
    """Merge one side's diff into its sorted arrays (stored worst-first, the best level last).

    The updates are sorted and merged in one pass over the levels from the worst updated one up to
    the touch — O(levels moved + updates) instead of one shift per update. Returns (new count, quantity
    added, quantity removed). When the arrays would overflow, all but the best `keep` levels drop first.
    """
    m = levels.shape[0]
    if m == 0:
        return count, 0.0, 0.0
    if count + m > keys.shape[0]:
        drop = max(0, count - keep)
        keys[: count - drop] = keys[drop:count].copy()
        quantities[: count - drop] = quantities[drop:count].copy()
        count -= drop
    update_keys = sign * levels[:, 0]
    order = np.argsort(update_keys, kind="mergesort")
    low = _search(keys, count, update_keys[order[0]])
    tail_keys = keys[low:count].copy()
    tail_quantities = quantities[low:count].copy()
    tail = tail_keys.shape[0]
    added = 0.0
    removed = 0.0
    i = 0
    j = 0
    write = low
    while i < tail or j < m:
        if j < m and j + 1 < m and update_keys[order[j]] == update_keys[order[j + 1]]:
            j += 1  # the same price twice in one message: the later one counts
            continue
        if j >= m or (i < tail and tail_keys[i] < update_keys[order[j]]):
            keys[write] = tail_keys[i]
            quantities[write] = tail_quantities[i]
            write += 1
            i += 1
            continue
        key = update_keys[order[j]]
        quantity = levels[order[j], 1]
        previous = 0.0
        if i < tail and tail_keys[i] == key:
            previous = tail_quantities[i]
            i += 1
        if quantity > 0.0:
            keys[write] = key
            quantities[write] = quantity
            write += 1
        if quantity > previous:
            added += quantity - previous
        else:
            removed += previous - quantity
        j += 1
    return write, added, removed


@njit(cache=True, nogil=True, error_model="numpy")
def _book_features(f: np.ndarray, n: np.ndarray, book: np.ndarray) -> None:
    """Imbalance, slope and void from the book (bid keys = price, ask keys = −price, best last)."""
    bids, asks = int(n[N_BID_COUNT]), int(n[N_ASK_COUNT])
    if bids == 0 or asks == 0:
        return
    best_bid = book[0, bids - 1]
    best_ask = -book[2, asks - 1]
    mid = 0.5 * (best_bid + best_ask)
    f[F_BOOK_MID] = mid
    for depth, slot in ((5, F_QI5), (20, F_QI20)):
        bid_sum = 0.0
        ask_sum = 0.0
        for i in range(min(depth, bids)):
            bid_sum += book[1, bids - 1 - i]
        for i in range(min(depth, asks)):
            ask_sum += book[3, asks - 1 - i]
        f[slot] = (bid_sum - ask_sum) / (bid_sum + ask_sum)
    near = 0.0
    far = 0.0
    for side in range(2):
        count = bids if side == 0 else asks
        keys = book[2 * side]
        quantities = book[2 * side + 1]
        # the bands as key bounds (keys grow towards the touch): no division per level
        if side == 0:
            near_key = mid * (1.0 - NEAR_BAND_BPS * 1e-4)
            far_key = mid * (1.0 - FAR_BAND_BPS * 1e-4)
        else:
            near_key = -mid * (1.0 + NEAR_BAND_BPS * 1e-4)
            far_key = -mid * (1.0 + FAR_BAND_BPS * 1e-4)
        cumulative = 0.0
        sum_xy = 0.0
        sum_xx = 0.0
        for i in range(min(SLOPE_LEVELS, count)):
            price = abs(keys[count - 1 - i])
            distance = abs(price - mid) / mid * 1e4
            cumulative += price * quantities[count - 1 - i]
            sum_xy += distance * cumulative
            sum_xx += distance * distance
        f[F_SLOPE_BID + side] = sum_xy / sum_xx if sum_xx > 0.0 else math.nan
        for i in range(count - 1, -1, -1):
            key = keys[i]
            if key < far_key:
                break
            notional = abs(key) * quantities[i]
            far += notional
            if key >= near_key:
                near += notional
    f[F_VOID] = 1.0 - near / far if far > 0.0 else math.nan


@njit(cache=True, nogil=True, error_model="numpy")
def _reset_side(keys: np.ndarray, quantities: np.ndarray, levels: np.ndarray, sign: float, keep: int) -> int:
    """Load a snapshot side sorted worst-first (keys = sign·price), keeping the best `keep` levels."""
    order = np.argsort(sign * levels[:, 0], kind="mergesort")
    count = 0
    start = max(0, order.shape[0] - keep)
    for j in range(start, order.shape[0]):
        level = order[j]
        if levels[level, 1] > 0.0:
            keys[count] = sign * levels[level, 0]
            quantities[count] = levels[level, 1]
            count += 1
    return count


@njit(cache=True, nogil=True, error_model="numpy")
def on_book(
    f: np.ndarray, n: np.ndarray, p: np.ndarray, o: np.ndarray, book: np.ndarray, ts_init: int, ts_event: int,
    reset: bool, bids: np.ndarray, asks: np.ndarray,
) -> None:  # fmt: skip
    """A snapshot (reset) or a diff: update the book; adds and cancels feed the cancel/new ratio (a
    removal beyond the volume traded since the last diff counts as a cancel)."""
    _advance(f, n, p, KIND_RESET if reset else KIND_DIFF, ts_init, ts_event)
    keep = book.shape[1] // 2
    if reset:
        n[N_BID_COUNT] = _reset_side(book[0], book[1], bids, 1.0, keep)
        n[N_ASK_COUNT] = _reset_side(book[2], book[3], asks, -1.0, keep)
    else:
        added = 0.0
        removed = 0.0
        for side in range(2):
            count, side_added, side_removed = _apply_side(
                book[2 * side], book[2 * side + 1], int(n[N_BID_COUNT + side]),
                bids if side == 0 else asks, 1.0 if side == 0 else -1.0, keep,
            )  # fmt: skip
            n[N_BID_COUNT + side] = count
            added += side_added
            removed += side_removed
        cancelled = max(0.0, removed - f[F_TRADED])
        for w in range(int(p[P_WINDOWS])):
            f[_acc(A_ADD, w)] += added
            f[_acc(A_CANCEL, w)] += cancelled
        f[F_TRADED] = 0.0
    _book_features(f, n, book)
    if not f[F_MID] > 0.0 and f[F_BOOK_MID] > 0.0:  # no quote stream yet: the book's touch stands in
        bids_n, asks_n = int(n[N_BID_COUNT]), int(n[N_ASK_COUNT])
        f[F_BID], f[F_BID_QTY] = book[0, bids_n - 1], book[1, bids_n - 1]
        f[F_ASK], f[F_ASK_QTY] = -book[2, asks_n - 1], book[3, asks_n - 1]
        f[F_MID] = f[F_BOOK_MID]
    _outputs(f, p, o)


@njit(cache=True, nogil=True, error_model="numpy")
def on_mark(
    f: np.ndarray, n: np.ndarray, p: np.ndarray, o: np.ndarray, ts_init: int, ts_event: int,
    mark: float, index: float, rate: float, next_funding_ns: int,
) -> None:  # fmt: skip
    """Mark price and the running funding rate; a change of next funding time is a settlement: the
    rate just before it becomes the settled rate Δf is measured from."""
    _advance(f, n, p, KIND_MARK, ts_init, ts_event)
    if n[N_NEXT_FUNDING] > 0 and next_funding_ns > n[N_NEXT_FUNDING]:
        f[F_SETTLED_FUNDING] = f[F_FUNDING]
    if next_funding_ns > 0:
        n[N_NEXT_FUNDING] = next_funding_ns
    f[F_MARK], f[F_INDEX], f[F_FUNDING] = mark, index, rate
    _outputs(f, p, o)


@njit(cache=True, nogil=True, error_model="numpy")
def on_settled_funding(
    f: np.ndarray, n: np.ndarray, p: np.ndarray, o: np.ndarray, ts_init: int, ts_event: int, rate: float
) -> None:
    _advance(f, n, p, KIND_FUNDING, ts_init, ts_event)
    f[F_SETTLED_FUNDING] = f[F_FUNDING] if not math.isnan(f[F_FUNDING]) else rate
    f[F_FUNDING] = rate
    _outputs(f, p, o)


@njit(cache=True, nogil=True, error_model="numpy")
def on_open_interest(
    f: np.ndarray, n: np.ndarray, p: np.ndarray, o: np.ndarray, ts_init: int, ts_event: int, open_interest: float
) -> None:
    """ΔOI: open interest against its decayed mean before this observation."""
    _advance(f, n, p, KIND_OI, ts_init, ts_event)
    f[F_OI] = open_interest
    _outputs(f, p, o)
    for w in range(int(p[P_WINDOWS])):
        f[_acc(A_OI, w)] += open_interest
        f[_acc(A_OI_N, w)] += 1.0


@njit(cache=True, nogil=True, error_model="numpy")
def on_liquidation(
    f: np.ndarray, n: np.ndarray, p: np.ndarray, o: np.ndarray, ts_init: int, ts_event: int, notional: float
) -> None:
    _advance(f, n, p, KIND_LIQ, ts_init, ts_event)
    for w in range(int(p[P_WINDOWS])):
        f[_acc(A_LIQ, w)] += notional
    _outputs(f, p, o)


# The table loop sits in this file with the handlers it calls: numba caches per file (see bars.py).
@njit(cache=True, nogil=True)
def _dispatch(
    f: np.ndarray, n: np.ndarray, p: np.ndarray, o: np.ndarray, book: np.ndarray, kind: int, t: int, te: int,
    a: float, b: float, c: float, d: float, e: int, bids: np.ndarray, asks: np.ndarray,
) -> None:  # fmt: skip
    if kind == KIND_TOP:
        on_top(f, n, p, o, t, te, a, b, c, d)
    elif kind == KIND_TRADE:
        on_trade(f, n, p, o, t, te, a, b, c > 0.5)
    elif kind in (KIND_RESET, KIND_DIFF):
        on_book(f, n, p, o, book, t, te, kind == KIND_RESET, bids, asks)
    elif kind == KIND_MARK:
        on_mark(f, n, p, o, t, te, a, b, c, e)
    elif kind == KIND_OI:
        on_open_interest(f, n, p, o, t, te, a)
    elif kind == KIND_LIQ:
        on_liquidation(f, n, p, o, t, te, a)
    elif kind == KIND_FUNDING:
        on_settled_funding(f, n, p, o, t, te, a)


@njit(cache=True, nogil=True)
def run_table(
    f: np.ndarray, n: np.ndarray, p: np.ndarray, o: np.ndarray, book: np.ndarray,
    kind: np.ndarray, ts_init: np.ndarray, ts_event: np.ndarray,
    a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray, e: np.ndarray,
    bid_offsets: np.ndarray, bids: np.ndarray, ask_offsets: np.ndarray, asks: np.ndarray,
    sample_every_ns: int, out: np.ndarray, out_ts: np.ndarray,
) -> int:  # fmt: skip
    rows = 0
    next_sample = -1
    for i in range(kind.shape[0]):
        t = ts_init[i]
        if sample_every_ns > 0:
            if next_sample < 0:
                next_sample = (t // sample_every_ns + 1) * sample_every_ns
            while t > next_sample and rows < out.shape[0]:  # the state as of each grid time passed
                out[rows] = o
                out_ts[rows] = next_sample
                rows += 1
                next_sample += sample_every_ns
        _dispatch(
            f, n, p, o, book, kind[i], t, ts_event[i], a[i], b[i], c[i], d[i], e[i],
            bids[bid_offsets[i] : bid_offsets[i + 1]], asks[ask_offsets[i] : ask_offsets[i + 1]],
        )  # fmt: skip
        if sample_every_ns == 0:
            out[rows] = o
            out_ts[rows] = t
            rows += 1
    return rows


def new_state(capacity: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fresh state; the book keeps between `capacity` and 2·`capacity` levels per side."""
    f = np.zeros(F_SIZE)
    for slot in (F_MID, F_FUNDING, F_SETTLED_FUNDING, F_MARK, F_INDEX, F_OI, F_LATENCY, F_BOOK_MID):
        f[slot] = math.nan
    for slot in (F_QI5, F_QI20, F_SLOPE_BID, F_SLOPE_ASK, F_VOID):
        f[slot] = math.nan
    f[F_MID] = 0.0
    f[F_TIMESTAMP_OK] = 1.0
    n = np.zeros(N_SIZE, dtype=np.int64)
    n[N_LAST_EVENT_TS : N_LAST_EVENT_TS + 8] = np.iinfo(np.int64).min
    return f, n, np.zeros((4, 2 * capacity))
