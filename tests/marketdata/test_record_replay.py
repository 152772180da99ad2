"""Record 10 simulated minutes from the simulator, replay them: exactly the recorded events, in order."""

from __future__ import annotations

from pathlib import Path

from kestrel.core.clock import LiveClock
from kestrel.core.enums import Market
from kestrel.core.events import MarketEvent
from kestrel.replay.recorded import replay_events
from kestrel.sim import RateModel
from kestrel.storage.recorder import ParquetRecorder
from kestrel.storage.schema import STREAM_BY_TYPE
from tests.marketdata.simulated import feed_config, running_feed, simulator, until

SPEED = 150.0  # two and a half simulated minutes per second


async def test_ten_simulated_minutes_recorded_then_replayed_identically(shared_data: Path, tmp_path: Path) -> None:
    rates = RateModel(scale=0.01)  # keep the event rate modest at this speed
    async with simulator(
        shared_data, markets=[Market.FUTURES, Market.SPOT], symbols=2, speed=SPEED, rates=rates
    ) as sim:
        config = feed_config(
            sim,
            markets=["futures", "spot"],
            streams=["bookTicker", "aggTrade", "depth@100ms", "kline_1m", "markPrice"],
            lag_degraded_ms=1e9,
            drift_degraded_ms=1e9,
        )
        recorder = ParquetRecorder(tmp_path, LiveClock(), flush_interval_ms=300, compact_on_close=False)
        recorder.start()
        recorded: list[MarketEvent] = []
        original = recorder.record

        def keep(event: MarketEvent) -> None:
            recorded.append(event)
            original(event)

        recorder.record = keep  # type: ignore[method-assign]
        async with running_feed(config, recorder=recorder) as feed:
            await until(lambda: all(c.streaming for c in feed.connections), 10, "streaming")
            first = sim.server_time_ms()
            await until(lambda: sim.server_time_ms() - first >= 10 * 60_000, 30, "ten simulated minutes")
        recorder.close()
    span_s = (max(e.ts_event for e in recorded) - min(e.ts_event for e in recorded)) / 1e9
    assert span_s >= 600 and len(recorded) > 1000
    expected = [
        recorded[i]
        for i in sorted(
            range(len(recorded)),
            key=lambda i: (
                recorded[i].ts_event,
                STREAM_BY_TYPE[type(recorded[i])].rank,
                recorded[i].market.value,
                recorded[i].symbol,
                i,
            ),
        )
    ]
    first_pass = list(replay_events(tmp_path))
    assert first_pass == expected  # every recorded event, nothing else, in exchange-time order
    assert list(replay_events(tmp_path)) == first_pass  # and the same every run
    assert {type(e).__name__ for e in first_pass} >= {"DepthUpdate", "BookTicker", "Kline", "MarkPrice"}
