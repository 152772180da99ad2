"""The lockstep plan: what a backtest runs on, handed to the simulator (`kestrel.sim.lockstep`).

`lockstep_plan(request)` prepares the request exactly as `kestrel backtest` does (`prepare`: the same
event table, instruments, engine settings, balances and seeded latency models) and adds the market
frames to publish: every recorded frame the backtest turns into an event, at the local time the
backtest's strategy sees it (exchange time + the constant feed latency), in the table's order (stable
by exchange time). A paper node trading the simulator in lockstep then sees the same market at the
same moments as the backtest's strategy, and its orders meet the same engine rows.
"""

from __future__ import annotations

from decimal import Decimal

from kestrel.backtest.data import frame_to_event
from kestrel.backtest.setup import BacktestRequest, _data_files, _in_window, prepare
from kestrel.core.enums import Market
from kestrel.core.errors import ConfigurationError
from kestrel.core.events import DepthSnapshot
from kestrel.matching import kernel as k
from kestrel.replay.raw import read_raw
from kestrel.sim.lockstep import LockstepFrame, LockstepPlan

NANOS_PER_MILLI = 1_000_000


def lockstep_plan(request: BacktestRequest, account: str) -> LockstepPlan:
    """The plan for `account` (a simulator account) of a backtest request on raw recordings."""
    feed = request.config.matching.feed_latency
    if feed.model != "constant":
        raise ConfigurationError(
            f"lockstep needs a constant feed latency (matching.feed_latency.model is {feed.model!r})"
        )
    feed_ns = round(feed.constant_ms * NANOS_PER_MILLI)
    setup = prepare(request).setup
    if setup.bar_symbols:
        raise ConfigurationError("lockstep replays raw recordings (L2), not candle files")
    wanted = {symbol.upper() for symbol in request.symbols}
    timed: list[tuple[int, LockstepFrame]] = []
    snapshots: dict[tuple[Market, str], int] = {}
    for path in _data_files(request.data):
        for frame in read_raw(path):
            event = frame_to_event(frame)
            if event is None or (wanted and event.symbol not in wanted) or not _in_window(event.ts_event, request):
                continue  # not in the table
            if isinstance(event, DepthSnapshot):  # served by REST (GET depth) from its local time on
                snapshots.setdefault((event.market, event.symbol), event.ts_event + feed_ns)
                continue
            timed.append((event.ts_event, LockstepFrame(event.ts_event + feed_ns, frame)))
    timed.sort(key=lambda item: item[0])  # stable, as the table's rows
    rows = setup.table.rows
    assert setup.order_latency is not None  # prepare() always sets the configured models
    return LockstepPlan(
        instruments=setup.instruments,
        table=setup.table,
        frames=[frame for _, frame in timed],
        start_ns=int(rows[0, k.COL_TS_EXCH]),
        order_latency=setup.order_latency,
        settings=setup.settings,
        account=account,
        spot_balances={asset: Decimal(amount) for asset, amount in setup.spot_balances.items()},
        futures_balances={asset: Decimal(amount) for asset, amount in setup.futures_balances.items()},
        snapshot_local_ns=snapshots,
        drain_after_ns=setup.drain_after_ns,
    )
