"""The node's lockstep pieces on their own: the clock moved only by the pacer, and the pacer refused
where it has no meaning."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from kestrel.config.loading import load_config
from kestrel.core.clock import SimClock, TimeEvent
from kestrel.core.errors import ConfigurationError
from kestrel.node import TradingNode, VenueKind
from kestrel.node.pacing import LockstepClock, LockstepPacer
from kestrel.strategy.base import Strategy


def fired_by(clock: SimClock | LockstepClock, stops: list[int]) -> list[tuple[str, int, int]]:
    fired: list[tuple[str, int, int]] = []

    def record(event: TimeEvent) -> None:
        fired.append((event.name, event.ts_event, clock.timestamp_ns()))

    clock.set_timer("quote", 1_100, record, interval_ns=100)
    clock.set_timer("once", 1_250, record)
    for stop in stops:
        clock.advance_to(stop)
    return fired


def test_lockstep_clock_fires_timers_as_the_backtest_clock_does() -> None:
    stops = [1_000, 1_050, 1_250, 1_251, 1_600]
    lockstep = LockstepClock(1_000)
    assert fired_by(lockstep, stops) == fired_by(SimClock(1_000), stops)
    assert lockstep.timestamp_ns() == 1_600 and lockstep.timestamp_ms() == 0
    lockstep.advance_to(1_500)  # never backwards
    assert lockstep.timestamp_ns() == 1_600


class Idle(Strategy):
    name = "idle"
    defaults: ClassVar[dict[str, Any]] = {}


@pytest.mark.parametrize(("mode", "venue"), [("paper", VenueKind.SIMULATED), ("live", VenueKind.BINANCE)])
def test_a_pacer_is_refused_outside_a_paper_run_on_the_binance_venue(
    tmp_path: Path, mode: Any, venue: VenueKind
) -> None:
    config = load_config(None, overrides={"environment": "dev", "storage": {"data_dir": str(tmp_path)}}, env_file=None)
    clock = LockstepClock(0)
    with pytest.raises(ConfigurationError, match="lockstep pacing is a paper test mode"):
        TradingNode(config, Idle({}), mode=mode, venue_kind=venue, clock=clock,
                    pacer=LockstepPacer("ws://127.0.0.1:1/sim/lockstep", clock))  # fmt: skip
