from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from kestrel.binance.schemas.exchange_info import parse_exchange_info, select_tradable_usdt
from kestrel.core.enums import Market
from kestrel.core.errors import ConfigurationError
from kestrel.marketdata.drift import ClockDrift
from kestrel.marketdata.policies import Backoff, RestCooldown
from kestrel.marketdata.quality import MINUTE_NS, LatencyHistogram, OncePerMinuteLog, QualityAudit
from kestrel.marketdata.shards import Route, SymbolRegistry, plan_shards, stream_names

TOKENS = ["bookTicker", "aggTrade", "depth@100ms", "kline_1m", "markPrice", "forceOrder"]


# ---- backoff and cooldown ---------------------------------------------------------------------
def test_backoff_doubles_from_half_a_second_to_eight_with_jitter() -> None:
    backoff = Backoff(0.5, 8.0, jitter=0.2, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(7)]
    for delay, base in zip(delays, [0.5, 1, 2, 4, 8, 8, 8], strict=True):
        assert base * 0.8 <= delay <= base * 1.2
    assert len({round(d, 6) for d in delays[4:]}) == 3  # jittered, not identical
    backoff.reset()
    assert 0.4 <= backoff.next_delay() <= 0.6
    exact = Backoff(0.5, 8.0, jitter=0.0)
    assert [exact.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]


def test_rest_cooldown_is_60s_doubling_to_300s_per_symbol() -> None:
    cooldown = RestCooldown()
    second = 1_000_000_000
    assert cooldown.is_ready("futures:BTCUSDT", 0)
    cooldown.on_failure("futures:BTCUSDT", 0)
    assert cooldown.cooldown_s("futures:BTCUSDT") == 120
    assert not cooldown.is_ready("futures:BTCUSDT", 119 * second) and cooldown.is_ready("futures:BTCUSDT", 120 * second)
    for _ in range(5):
        cooldown.on_failure("futures:BTCUSDT", 0)
    assert cooldown.cooldown_s("futures:BTCUSDT") == 300
    assert cooldown.is_ready("futures:ETHUSDT", 0)  # per symbol
    cooldown.on_success("futures:BTCUSDT", 0)
    assert cooldown.cooldown_s("futures:BTCUSDT") == 60 and not cooldown.is_ready("futures:BTCUSDT", 59 * second)
    cooldown.clear("futures:BTCUSDT")
    assert cooldown.is_ready("futures:BTCUSDT", 0)


# ---- shards -----------------------------------------------------------------------------------
def test_stream_names_and_routes() -> None:
    assert stream_names(Market.FUTURES, "BTCUSDT", TOKENS) == [
        (Route.PUBLIC, "btcusdt@bookTicker"),
        (Route.MARKET, "btcusdt@aggTrade"),
        (Route.PUBLIC, "btcusdt@depth@100ms"),
        (Route.MARKET, "btcusdt@kline_1m"),
        (Route.MARKET, "btcusdt@markPrice"),
        (Route.MARKET, "btcusdt@forceOrder"),
    ]
    assert [name for _, name in stream_names(Market.SPOT, "ETHUSDT", TOKENS)] == [
        "ethusdt@bookTicker", "ethusdt@aggTrade", "ethusdt@depth@100ms", "ethusdt@kline_1m"
    ]  # fmt: skip


def test_plan_covers_every_stream_once_within_the_cap() -> None:
    symbols = {Market.FUTURES: [f"S{i:03d}USDT" for i in range(300)], Market.SPOT: ["BTCUSDT", "ETHUSDT"]}
    shards = plan_shards(symbols, ["bookTicker", "aggTrade", "depth@100ms"], streams_per_connection=100)
    names = [name for shard in shards for name in shard.streams]
    assert len(names) == len(set(names)) == 300 * 3 + 2 * 3
    assert all(len(shard.streams) <= 100 for shard in shards)
    public = [s for s in shards if s.route is Route.PUBLIC]
    assert all("@aggTrade" not in n for s in public for n in s.streams)
    assert len(public) == 6 and len([s for s in shards if s.route is Route.MARKET]) == 3
    assert [s.index for s in shards] == list(range(len(shards)))
    # a symbol's public streams stay together
    for shard in public:
        assert len(shard.streams) % 2 == 0
    assert shards[0].name == "futures/market#0" and shards[-1].name.startswith("spot#")
    with pytest.raises(ConfigurationError):
        plan_shards(symbols, TOKENS, 0)
    tiny = plan_shards({Market.FUTURES: ["BTCUSDT"]}, TOKENS, 1)
    assert len(tiny) == 6 and all(len(s.streams) == 1 for s in tiny)


def test_registry_from_real_exchange_info(shared_data: Path) -> None:
    payload = orjson.loads((shared_data / "exchange_info/usdm_exchangeInfo_2025-03-06_baouih.json").read_bytes())
    instruments = select_tradable_usdt(parse_exchange_info(payload, Market.FUTURES))
    registry = SymbolRegistry.from_instruments(instruments)
    assert len(registry) > 300
    symbols = registry.symbols(Market.FUTURES)
    assert "BTCUSDT" in symbols and symbols == sorted(symbols)
    assert sorted(registry.ids.values()) == list(range(len(registry)))
    first_id = registry.id_of(Market.FUTURES, "BTCUSDT")
    added, removed = registry.update(instruments[:-1])
    assert not added and len(removed) == 1
    registry.update(instruments)
    assert registry.id_of(Market.FUTURES, "BTCUSDT") == first_id  # ids are stable


# ---- drift ------------------------------------------------------------------------------------
def test_clock_drift_ewma_and_degraded() -> None:
    drift = ClockDrift(alpha=0.5, degraded_ms=100)
    assert drift.observe(server_time_ms=1_250, sent_ms=1_000, received_ms=1_000) == 250
    assert drift.degraded and drift.offset_ns == 250_000_000
    drift.observe(server_time_ms=2_050, sent_ms=2_000, received_ms=2_000)  # 50
    assert drift.offset_ms == 150
    drift.observe(server_time_ms=3_050, sent_ms=3_000, received_ms=3_000)
    assert drift.offset_ms == 100 and not drift.degraded
    drift.observe(server_time_ms=9_000, sent_ms=4_000, received_ms=4_500)  # slow round trip: ignored
    assert drift.offset_ms == 100 and drift.discarded == 1


# ---- quality ----------------------------------------------------------------------------------
def test_latency_histogram_quantiles_within_three_percent() -> None:
    histogram = LatencyHistogram()
    rng = random.Random(5)
    values = sorted(int(rng.lognormvariate(7, 1.3)) for _ in range(20_000))
    for value in values:
        histogram.record(value)
    for q in (0.5, 0.9, 0.99):
        exact = values[int(q * len(values)) - 1]
        assert abs((histogram.quantile_us(q) or 0) - exact) <= max(2, exact * 0.035)
    histogram.record(-5)
    assert histogram.negative == 1
    merged = LatencyHistogram()
    merged.merge(histogram)
    assert merged.count == histogram.count and merged.quantile_us(0.5) == histogram.quantile_us(0.5)
    assert LatencyHistogram().summary_ms()["p99"] is None


def test_gap_ratio_per_minute_asks_for_a_rebuild() -> None:
    audit = QualityAudit(lag_degraded_ms=1000, gap_ratio_rebuild_pct=0.2)
    problems = {"futures:A": 5, "futures:B": 0}
    noisy, clean = audit.symbol("futures:A"), audit.symbol("futures:B")
    noisy.messages = clean.messages = 100
    assert audit.roll_minute(0, problems.__getitem__) == []
    noisy.messages += 1000
    clean.messages += 1000
    problems["futures:A"] += 3  # 0.3 % of the minute's messages
    problems["futures:B"] += 2  # 0.2 %: not above the limit
    assert audit.roll_minute(MINUTE_NS // 2, problems.__getitem__) == []
    assert audit.roll_minute(MINUTE_NS, problems.__getitem__) == ["futures:A"]
    assert noisy.last_gap_ratio_pct == pytest.approx(0.3) and clean.last_gap_ratio_pct == pytest.approx(0.2)
    assert audit.roll_minute(2 * MINUTE_NS, problems.__getitem__) == []  # a quiet minute: ratio 0
    assert noisy.last_gap_ratio_pct == 0.0


def test_degraded_by_lag_or_drift() -> None:
    audit = QualityAudit(lag_degraded_ms=1000, gap_ratio_rebuild_pct=0.2)
    quality = audit.symbol("spot:X")
    assert not audit.observe_latency(quality, 5_000_000)
    assert audit.observe_latency(quality, 1_500_000_000) and audit.degraded_symbols() == ["spot:X"]
    assert not audit.observe_latency(quality, 2_000_000)
    audit.drift_degraded = True
    assert audit.observe_latency(quality, 2_000_000)
    totals = audit.totals()
    assert totals["latency_ms"]["count"] == 4 and totals["degraded_symbols"] == 1


def test_problems_are_logged_once_per_kind_per_minute() -> None:
    problems = OncePerMinuteLog()
    logged = [problems.record("malformed", t * 1_000_000_000) for t in (0, 1, 30, 59, 60, 61)]
    assert logged == [True, False, False, False, True, False]
    assert problems.record("unknown_event", 2_000_000_000)
    assert problems.counts == {"malformed": 6, "unknown_event": 1}
