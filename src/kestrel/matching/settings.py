"""Engine settings and latency models built from configuration (shared by backtest and paper trading).

Every random generator is seeded from the run's seed and the name of its stream, so the same request
always builds the same run.
"""

from __future__ import annotations

import hashlib

import numpy as np

from kestrel.config.models import LatencyConfig, MatchingConfig
from kestrel.core.enums import MarginType
from kestrel.core.errors import ConfigurationError
from kestrel.matching.engine import EngineSettings
from kestrel.matching.fees import FeeRates, FeeSchedule
from kestrel.matching.latency import (
    ConstantLatency,
    EmpiricalLatency,
    LatencyModel,
    LogNormalLatency,
    NormalLatency,
    OrderLatency,
    read_measured,
)
from kestrel.matching.margin import BracketRegistry


def stream_seed(seed: int, stream: str) -> int:
    """An independent seed per random stream, derived from the run's seed and the stream's name."""
    key = int.from_bytes(hashlib.sha256(stream.encode()).digest()[:4], "big")
    return int(np.random.SeedSequence([seed, key]).generate_state(1)[0])


def build_latency(config: LatencyConfig, seed: int, stream: str, side: int = 0) -> LatencyModel:
    """A latency model from configuration; `side` picks the entry (0) or response (1) column of a
    measured file."""
    if config.model == "constant":
        return ConstantLatency(round(config.constant_ms * 1_000_000))
    if config.model == "lognormal":
        return LogNormalLatency(config.median_ms, config.sigma, stream_seed(seed, stream), config.min_ms)
    if config.model == "normal":
        return NormalLatency(config.mean_ms, config.std_ms, stream_seed(seed, stream), config.min_ms)
    if config.model == "measured":
        if config.samples_file is None:
            raise ConfigurationError(f"{stream}: the measured latency model needs samples_file")
        samples = read_measured(config.samples_file)[side]
        return EmpiricalLatency(samples, stream_seed(seed, stream), f"measured {config.samples_file.name}")
    raise ConfigurationError(f"{stream}: latency model {config.model!r} applies to the feed only")


def engine_settings(config: MatchingConfig) -> EngineSettings:
    overrides = {market: FeeRates(rates.maker, rates.taker) for market, rates in config.fee_overrides.items()}
    brackets = (
        BracketRegistry.from_file(config.leverage_brackets_file) if config.leverage_brackets_file else BracketRegistry()
    )
    return EngineSettings(
        fees=FeeSchedule(config.spot_fee_tier, config.futures_fee_tier, overrides),
        brackets=brackets,
        queue_model=config.queue_model,
        queue_power=config.queue_power,
        book_window_ticks=config.book_window_ticks,
        default_leverage=config.default_leverage,
        default_margin_type=MarginType(config.default_margin_type),
        liquidation_fee_rate=config.liquidation_fee_rate,
        bar_market_reserve=config.bar_market_reserve,
    )


def order_latency(config: MatchingConfig, seed: int) -> OrderLatency:
    """The entry and response latency models of the order path."""
    return OrderLatency(
        build_latency(config.order_entry_latency, seed, "order_entry", 0),
        build_latency(config.order_response_latency, seed, "order_response", 1),
    )
