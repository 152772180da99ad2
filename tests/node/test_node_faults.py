"""Issue #6 (a) through the node: a TradingNode on the Binance venue trades steadily against the
simulator over real sockets while one kind of fault is injected; afterwards the simulator's own
order records are the judge — no duplicate order, every order the node sent has a final state in
the ledger equal to the simulator's, and the request weight never went over the budget."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from kestrel.core.enums import OrderStatus
from kestrel.node import TradingNode, VenueKind
from kestrel.sim import FaultPlan
from kestrel.storage.ledger import Ledger
from tests.node.node_sim_helpers import (
    UNRESOLVED,
    SteadyTrader,
    WeightWatch,
    node_config,
    simulator_options,
    simulator_orders,
    stop_when,
    trading_simulator,
)

WEIGHT_BUDGET = 1200
# venue settings that make every recovery path quick enough for a test
FAST_VENUE = {"recv_window_ms": 1000, "request_timeout_ms": 1000, "user_stream_silence_s": 0.5,
              "rest_poll_interval_s": 0.3, "futures_weight_per_minute": WEIGHT_BUDGET}  # fmt: skip

# fault kind → (the simulator's plan, the stats counter (section, name) that proves it was injected)
FAULTS: dict[str, tuple[FaultPlan, tuple[str, str]]] = {
    "5xx-placed": (FaultPlan(order_5xx_placed_rate=0.3), ("trading", "order_5xx_placed_injected")),
    "5xx-unplaced": (FaultPlan(order_5xx_unplaced_rate=0.3), ("trading", "order_5xx_unplaced_injected")),
    "timeout": (FaultPlan(order_timeout_rate=0.2, order_timeout_stall_s=1.5), ("trading", "order_timeouts_injected")),
    "429": (FaultPlan(rest_429_rate=0.1, retry_after_s=1), ("rest", "errors_429_injected")),
    "418": (FaultPlan(rest_418_rate=0.04, retry_after_s=1), ("rest", "errors_418_injected")),
    "user-stream-silence": (
        FaultPlan(user_stream_silence_every_s=1.0, user_stream_silence_s=0.8),
        ("trading", "user_events_dropped"),
    ),
    "listen-key-expiry": (FaultPlan(listen_key_expire_every_s=1.2), ("trading", "listen_keys_expired")),
    "ws-disconnects": (FaultPlan(disconnect_every_s=1.2), ("connections", "disconnects_injected")),
    "all-at-once": (
        FaultPlan(
            order_5xx_placed_rate=0.1,
            order_5xx_unplaced_rate=0.1,
            order_timeout_rate=0.1,
            order_timeout_stall_s=1.5,
            rest_429_rate=0.03,
            retry_after_s=1,
            user_stream_silence_every_s=1.5,
            user_stream_silence_s=0.6,
            listen_key_expire_every_s=2.0,
            disconnect_every_s=2.5,
        ),
        ("trading", "listen_keys_expired"),
    ),
}


def stat(stats: dict[str, Any], section: str, name: str) -> int:
    return int(stats.get(section, {}).get(name, 0))


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(FAULTS))
async def test_node_keeps_track_of_every_order_under_faults(shared_data: Path, tmp_path: Path, kind: str) -> None:
    plan, (section, counter) = FAULTS[kind]
    options = simulator_options(shared_data, plan, weight_budget=WEIGHT_BUDGET)
    async with trading_simulator(options) as sim:
        strategy = SteadyTrader(trading_s=3.0)
        node = TradingNode(node_config(sim, tmp_path, FAST_VENUE), strategy, mode="paper",
                           venue_kind=VenueKind.BINANCE)  # fmt: skip

        def settled() -> bool:
            return strategy.done and not strategy.unresolved() and node.binance is not None and node.binance.busy == 0

        with WeightWatch(sim) as weight:
            watcher = asyncio.create_task(stop_when(settled, node.request_stop, timeout_s=45.0))
            await node.run()
            assert await watcher, f"orders still unresolved: {strategy.unresolved()}"
        stats = sim.stats()
        exchange_orders = simulator_orders(sim)
    placed = {o.client_order_id: o for o in exchange_orders}

    assert stat(stats, section, counter) > 0, f"the {kind} fault was never injected: {stats.get(section)}"
    assert len(strategy.sent) >= 6 and node.summary.fills >= 1
    # no duplicate: the simulator holds each client order id at most once
    duplicates = [cid for cid, n in Counter(o.client_order_id for o in exchange_orders).items() if n > 1]
    assert duplicates == []
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    try:
        recorded = {o.client_order_id: o for o in ledger.orders()}
    finally:
        ledger.close()
    assert set(placed) <= set(recorded), "the simulator holds orders the node does not know"
    assert set(strategy.sent) <= set(recorded)
    for client_id, order in recorded.items():
        assert order.status not in UNRESOLVED, (client_id, order.status)
        exchange = placed.get(client_id)
        if exchange is None:  # never placed: the node must say so
            assert order.status is OrderStatus.REJECTED, (client_id, order.status)
            continue
        assert (order.status, order.filled_quantity) == (exchange.status, exchange.filled_quantity), client_id
    # the weight budget, as the simulator counted it: never a request over it
    assert weight.peak <= WEIGHT_BUDGET
    assert stat(stats, "rest", "rate_limited_429") == 0 and stat(stats, "rest", "banned_418") == 0
    assert stat(stats, "trading", "order_rate_limited_429") == 0  # nor over the order-count budget
