"""Options of the market simulator (Python API and `kestrel sim serve`).

Every duration of the protocol (24 h connection cut, the 5-minute connection budget, the 1-minute
weight window, IP bans, ping cadence and pong timeout) is multiplied by `time_scale`, so a test can
see a "24 h" cut after 0.5 s with ``time_scale=0.5/86400``. The per-second incoming message limit is
not scaled, so pings never come faster than once a second (see `scaled_ping`); market rates are not
scaled either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kestrel.core.enums import Market
from kestrel.sim.faults import FaultPlan
from kestrel.sim.trading.options import TradingOptions


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateModel(_Frozen):
    """Per-symbol activity of the synthetic market. Rank 0 is the most active symbol; a symbol's rate is
    ``max(minimum, major × (1 + rank)^-activity_exponent) × scale``.

    bookTicker messages ≈ 0.6 × book events + trades (most book events touch the best level);
    diff depth is at most one message per symbol per update period; aggTrade ≈ trades × levels swept.
    """

    book_events_per_s_major: float = Field(60.0, gt=0, description="Book changes per second of the top symbol")
    book_events_per_s_min: float = Field(2.0, gt=0, description="Floor for the least active symbols")
    trades_per_s_major: float = Field(8.0, ge=0, description="Taker orders per second of the top symbol")
    trades_per_s_min: float = Field(0.2, ge=0, description="Floor for the least active symbols")
    liquidations_per_s_major: float = Field(0.05, ge=0, description="USD-M forced orders per second, top symbol")
    liquidations_per_s_min: float = Field(0.002, ge=0, description="Floor for the least active symbols")
    activity_exponent: float = Field(0.5, ge=0, le=3, description="How fast activity falls with rank")
    scale: float = Field(1.0, gt=0, le=1000, description="Multiplies every rate (load tests)")
    levels_per_side: int = Field(200, ge=5, le=5000, description="Initial book depth per side")
    max_levels_per_side: int = Field(600, ge=10, le=10_000, description="Far levels beyond this are cancelled")

    def rate(self, major: float, minimum: float, rank: int) -> float:
        return float(max(minimum, major * (1 + rank) ** -self.activity_exponent) * self.scale)


class ProtocolLimits(_Frozen):
    """What the exchange enforces per connection and per IP (spec §1.3, §1.4, §4.4)."""

    streams_per_connection: int = Field(1024, ge=1, description="Streams one connection may hold (both markets)")
    messages_per_s_spot: int = Field(5, ge=1, description="Incoming messages per second per spot connection")
    messages_per_s_futures: int = Field(10, ge=1, description="Same for USD-M")
    connections_per_5min: int = Field(300, ge=1, description="New connections per IP per 5 minutes")
    connection_lifetime_s: float = Field(86_400.0, gt=0, description="The 24 h cut")
    ping_interval_s_spot: float = Field(20.0, gt=0, description="Server ping cadence, spot")
    pong_timeout_s_spot: float = Field(60.0, gt=0, description="Disconnect without pong after this, spot")
    ping_interval_s_futures: float = Field(180.0, gt=0, description="Server ping cadence, USD-M")
    pong_timeout_s_futures: float = Field(600.0, gt=0, description="Disconnect without pong after this, USD-M")
    weight_per_minute_spot: int = Field(6000, ge=1, description="REQUEST_WEIGHT per minute, spot")
    weight_per_minute_futures: int = Field(2400, ge=1, description="REQUEST_WEIGHT per minute, USD-M")
    requests_over_limit_before_ban: int = Field(10, ge=1, description="429s ignored before a 418 ban")
    ban_s: float = Field(120.0, gt=0, description="First IP ban (Binance escalates from 2 min)")
    max_outbox_frames: int = Field(200_000, ge=100, description="Queued frames before a slow consumer is cut")


class SimulatorOptions(_Frozen):
    markets: tuple[Market, ...] = Field((Market.FUTURES, Market.SPOT), min_length=1)
    symbols: int | list[str] = Field(20, description="A count (real symbols first, then generated) or names")
    source: Literal["synthetic", "replay"] = "synthetic"
    replay_files: list[Path] = Field(default_factory=list, description="Raw recordings to replay")
    replay_start: Literal["immediately", "first_subscription", "all_depth_subscribed"] = Field(
        "first_subscription",
        description="Replay: start at once, when the first client subscribes, or when every recorded "
        "diff-depth stream has a subscriber (a sharded client is fully connected)",
    )
    replay_full_depth_snapshots: bool = Field(
        False,
        description="Replay: serve every level of the replayed book whatever the `limit` (a client that syncs "
        "after the recorded snapshot then still ends with exactly the raw file's book)",
    )
    speed: float = Field(1.0, ge=0, le=10_000, description="Timeline speed; 0 = replay as fast as possible")
    seed: int = 42
    rates: RateModel = RateModel()
    faults: FaultPlan = FaultPlan()
    limits: ProtocolLimits = ProtocolLimits()
    time_scale: float = Field(1.0, gt=0, le=1000, description="Multiplies every protocol duration")
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65533, description="REST port; WS = port+1, futures WS = port+2; 0 = free ports")
    start_time_ms: int | None = Field(None, ge=0, description="Exchange time at start (default: now)")
    data_dir: Path | None = Field(None, description="Shared Binance data folder (default: ../shared/data/binance)")
    book_history_updates: int = Field(
        8192, ge=100, le=1_000_000, description="Changes kept per book: how far back book_at can rebuild"
    )
    trading: TradingOptions = Field(default_factory=TradingOptions, description="The trading API and its accounts")

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: int | list[str]) -> int | list[str]:
        if isinstance(value, int):
            if not 1 <= value <= 5000:
                raise ValueError("symbol count must be between 1 and 5000")
            return value
        names = [name.strip().upper() for name in value if name.strip()]
        if not names:
            raise ValueError("no symbol given")
        return list(dict.fromkeys(names))

    @model_validator(mode="after")
    def _source(self) -> SimulatorOptions:
        if self.source == "synthetic" and self.speed == 0:
            raise ValueError("speed 0 (as fast as possible) is for replay; the synthetic market runs in real time")
        return self

    def scaled(self, seconds: float) -> float:
        return seconds * self.time_scale

    def scaled_ping(self, seconds: float) -> float:
        """Ping cadence and pong timeouts follow `time_scale` but, when it shrinks time, never drop below
        one second: answering faster pings would itself break the 5 messages/s limit, which is not scaled."""
        scaled = seconds * self.time_scale
        return scaled if self.time_scale >= 1 else max(scaled, min(seconds, 1.0))
