"""Configuration models. Every default is documented in its Field; unknown keys are errors.

The defaults describe a local development setup against the local Binance simulator with embedded
stores; `config/prod.yaml` points the same code at the real exchange, PostgreSQL and Redis.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from kestrel.config.research import ResearchConfig
from kestrel.core.enums import Market

Percent = Annotated[float, Field(ge=0, le=100)]
PositiveMs = Annotated[int, Field(gt=0)]


def _url_checker(*schemes: str) -> AfterValidator:
    def check(value: str) -> str:
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in schemes or not rest or rest.startswith("/"):
            raise ValueError(f"must be a {' or '.join(schemes)} URL like {schemes[0]}://host:port")
        return value.rstrip("/")  # bases are joined with paths that start with '/'

    return AfterValidator(check)


HttpUrl = Annotated[str, _url_checker("http", "https")]
WsUrl = Annotated[str, _url_checker("ws", "wss")]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


# ---- venue ---------------------------------------------------------------------------------------
class SpotEndpoints(Section):
    rest_url: HttpUrl = Field("http://127.0.0.1:18080", description="Spot REST base (https://api.binance.com)")
    ws_url: WsUrl = Field("ws://127.0.0.1:18081", description="Spot stream base (wss://stream.binance.com:9443)")
    ws_api_url: WsUrl = Field(
        "ws://127.0.0.1:18081/ws-api/v3",
        description="Spot WebSocket API (wss://ws-api.binance.com:443/ws-api/v3), used for user data",
    )


class FuturesEndpoints(Section):
    rest_url: HttpUrl = Field("http://127.0.0.1:18080", description="USD-M REST base (https://fapi.binance.com)")
    ws_url: WsUrl = Field(
        "ws://127.0.0.1:18081",
        description="USD-M stream base without route (wss://fstream.binance.com); /public, /market, "
        "/private are appended per stream",
    )


class VenueConfig(Section):
    name: Literal["binance", "simulator"] = Field("simulator", description="Which venue the URLs point at")
    spot: SpotEndpoints = SpotEndpoints()
    futures: FuturesEndpoints = FuturesEndpoints()
    api_key: SecretStr | None = Field(None, description="API key; only where orders are sent. From env/.env")
    api_secret: SecretStr | None = Field(None, description="HMAC secret. From env/.env, never from a file")
    recv_window_ms: int = Field(5000, gt=0, le=60000, description="recvWindow sent with signed requests")
    request_timeout_ms: int = Field(10_000, gt=0, description="HTTP timeout per REST request")
    spot_user_stream: Literal["ws_api", "listen_key"] = Field(
        "ws_api", description="Spot user data: WS API subscribe (current) or legacy listenKey"
    )
    futures_user_stream_route: Literal["private", "legacy"] = Field(
        "private",
        description="USD-M user data URL: <ws_url>/private/ws/<listenKey> (current) or legacy <ws_url>/ws/<listenKey>",
    )
    listen_key_keepalive_s: float = Field(
        1800.0, gt=0, le=3600, description="listenKey keepalive period (keys expire after 60 min without one)"
    )
    user_stream_silence_s: float = Field(
        30.0, gt=0, description="No user data event this long while orders are open ⇒ poll open orders by REST"
    )
    rest_poll_interval_s: float = Field(
        5.0, gt=0, description="Period of the REST polling fallback while the user data stream is silent or down"
    )
    spot_weight_per_minute: int = Field(
        6000, ge=1, description="Spot REQUEST_WEIGHT budget per minute (the exchange's limit for this IP)"
    )
    futures_weight_per_minute: int = Field(
        2400, ge=1, description="USD-M REQUEST_WEIGHT budget per minute (the exchange's limit for this IP)"
    )
    rate_limit_safety: float = Field(
        0.9, gt=0, le=1, description="Share of each weight / order-count window we use; a request past it waits"
    )
    shared_budget_redis_url: SecretStr | None = Field(
        None,
        description="redis://host:port/db shared by every process trading with this API key: weight and order "
        "counts are kept there so together they stay within the budget; None = this process only",
    )

    @field_validator("shared_budget_redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value


# ---- data ----------------------------------------------------------------------------------------
class IngestConfig(Section):
    markets: list[Market] = Field([Market.FUTURES, Market.SPOT], min_length=1, description="Markets to capture")
    symbols: Literal["all"] | list[str] = Field(
        "all", description="'all' (every TRADING USDT symbol) or an explicit list"
    )
    streams: list[str] = Field(
        ["bookTicker", "aggTrade", "depth@100ms", "kline_1m", "markPrice", "forceOrder"],
        min_length=1,
        description="Per-symbol streams to subscribe",
    )
    streams_per_connection: int = Field(
        100, ge=1, le=1024, description="Streams per WS connection (exchange cap 1024 spot, 200 futures)"
    )
    micro_batch_ms: int = Field(20, ge=1, le=1000, description="Hot-path micro-batch window")
    backoff_initial_ms: PositiveMs = Field(500, description="First reconnect delay")
    backoff_max_ms: PositiveMs = Field(8000, description="Reconnect delay cap")
    backoff_jitter: float = Field(0.2, ge=0, le=1, description="Relative jitter on reconnect delays")
    heartbeat_timeout_s: float = Field(10.0, gt=0, description="No message for this long ⇒ reconnect")
    rotate_before_cut_s: float = Field(
        1800.0, ge=0, description="Open a replacement connection this long before the 24 h cut"
    )
    subscribe_messages_per_s: float = Field(
        4.0,
        gt=0,
        le=10,
        description="Control messages per second per connection (exchange cap 5 spot, 10 futures)",
    )
    reconnect_alert_after: int = Field(3, ge=1, description="Alert after this many failed reconnects")
    rest_fallback_cooldown_s: float = Field(60.0, gt=0, description="Base per-symbol REST fallback cooldown")
    rest_fallback_cooldown_max_s: float = Field(300.0, gt=0, description="Cap of the REST fallback cooldown")
    drift_degraded_ms: float = Field(100.0, gt=0, description="Clock drift above this sets `degraded`")
    lag_degraded_ms: float = Field(1000.0, gt=0, description="Ingest lag above this sets `degraded`")
    drift_ewma_alpha: float = Field(0.1, gt=0, le=1, description="EWMA weight of the clock-drift estimate")
    gap_ratio_rebuild_pct: float = Field(0.2, gt=0, description="Gap ratio per minute (%) that forces a rebuild")
    depth_snapshot_limit: int = Field(1000, ge=5, le=5000, description="Levels requested in depth snapshots")
    exchange_info_refresh_h: float = Field(24.0, gt=0, description="Instrument registry refresh interval")
    connection_lifetime_s: float = Field(
        86_400.0, gt=0, description="Lifetime the exchange allows a stream connection (the 24 h cut)"
    )
    depth_reorder_window_ms: int = Field(
        250,
        ge=0,
        le=10_000,
        description="A depth event after a sequence break is held this long (or until the next depth event) "
        "in case the missing event arrives late; then the gap is confirmed and the book resynced",
    )
    snapshot_concurrency: int = Field(4, ge=1, le=64, description="Depth snapshot requests in flight at once")
    drift_poll_interval_s: float = Field(30.0, gt=0, description="Server-time polls for the clock-drift EWMA")
    rest_fallback_after_s: float = Field(
        2.0, ge=0, description="A shard down this long gets its symbols' top of book from REST (with cooldown)"
    )

    @model_validator(mode="after")
    def _backoff_order(self) -> IngestConfig:
        if self.backoff_max_ms < self.backoff_initial_ms:
            raise ValueError("backoff_max_ms must be >= backoff_initial_ms")
        return self


class DataConfig(Section):
    ingest: IngestConfig = IngestConfig()


# ---- storage -------------------------------------------------------------------------------------
class StorageConfig(Section):
    data_dir: Path = Field(Path("data"), description="Root of market/, features/, labels/, runs/, models/")
    ledger_url: str = Field(
        "sqlite:///data/ledger.sqlite",
        description="SQLAlchemy URL of the trading ledger (sqlite or postgresql)",
    )
    ledger_sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL",
        description="SQLite ledger durability: FULL = each write on disk before it returns (survives a power cut); "
        "NORMAL = survives a process crash, saves an fsync per write (the last writes may roll back on a power "
        "cut; start-up reconciliation then adopts the orders sent meanwhile)",
    )
    redis_url: SecretStr | None = Field(None, description="redis://host:port/db; None = in-process cache and bus")
    clickhouse_url: SecretStr | None = Field(None, description="ClickHouse server; None = embedded stores only")
    parquet_compression: Literal["zstd", "snappy", "lz4", "none"] = Field("zstd", description="Parquet codec")
    parquet_compression_level: int = Field(3, ge=1, le=22, description="ZSTD level")
    recorder_flush_ms: int = Field(
        30_000,
        ge=10,
        description="How often the recorder turns buffered rows into Parquet parts (one file per partition "
        "each time); rows are durable before that, in the write-ahead log, every data.ingest.micro_batch_ms",
    )
    hot_cache_ttl_s: int = Field(5, ge=1, le=3600, description="TTL of Redis top-of-book snapshots (SETEX)")
    redis_stream_maxlen: int = Field(10_000, ge=10, description="Approximate MAXLEN of mkt:tick / mkt:depth streams")
    redis_depth_levels: int = Field(20, ge=1, le=1000, description="Book levels per side in mkt:depth entries")
    recorder_fsync: bool = Field(True, description="fsync each Parquet part and its directory before committing")

    @field_validator("ledger_url")
    @classmethod
    def _ledger_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:// or postgresql:// URL")
        return value


# ---- features / model ----------------------------------------------------------------------------
class FeatureConfig(Section):
    windows_ms: list[int] = Field([50, 250, 1000, 60_000], min_length=1, description="Stacked windows")
    normalisation: Literal["median_mad", "rank", "none"] = Field("median_mad", description="Robust scaling")
    normalisation_window: int = Field(2048, ge=16, description="Samples in the rolling normaliser")
    atr_period: int = Field(14, ge=1, description="Wilder ATR period")
    liquidity_threshold_usdt: float = Field(50_000.0, gt=0, description="depth_top1 giving liq_score = 1")
    max_latency_ms: float = Field(500.0, gt=0, description="Samples slower than this are excluded from training")
    max_clock_offset_ms: float = Field(10_000.0, gt=0, description="|local − server| above this excludes a sample")


class ModelConfig(Section):
    registry_dir: Path = Field(Path("data/models"), description="Versioned ONNX models")
    name: str | None = Field(None, description="Model served to the strategy; None = rules only")
    probability_threshold: float = Field(0.6, ge=0, le=1, description="τ: minimum calibrated p to act")
    utility_threshold: float = Field(1.0, ge=0, description="κ: minimum utility U to act")
    calibration: Literal["isotonic", "platt"] = Field("isotonic", description="Out-of-fold calibrator")
    drift_rollback_pp: float = Field(5.0, gt=0, le=100, description="Calibration drift (pp) that rolls back")
    ensemble: Literal["none", "vote", "weight"] = Field("none", description="How several models combine")
    inference_threads: int = Field(1, ge=1, le=64, description="onnxruntime intra-op threads")


# ---- strategy ------------------------------------------------------------------------------------
class ScoreBand(Section):
    """R-SE-3: probabilities from `min_probability` up get `size_multiplier` (0 = skip).

    `inclusive: false` makes the bound strict (p > min), as in ">0.85 ×1.2".
    """

    min_probability: float = Field(ge=0, le=1)
    size_multiplier: float = Field(ge=0)
    inclusive: bool = True


DEFAULT_SCORE_BANDS = [
    ScoreBand(min_probability=0.85, size_multiplier=1.2, inclusive=False),
    ScoreBand(min_probability=0.6, size_multiplier=1.0),
    ScoreBand(min_probability=0.4, size_multiplier=0.5),
    ScoreBand(min_probability=0.0, size_multiplier=0.0),
]


class StrategyConfig(Section):
    rules_file: Path | None = Field(None, description="L1 rule DSL file (YAML); None = no rules")
    score_bands: list[ScoreBand] = Field(DEFAULT_SCORE_BANDS, min_length=1, description="L2 p → size multiplier")
    size_multiplier_min: float = Field(0.25, ge=0, description="Lower clamp of rules × model size multiplier")
    size_multiplier_max: float = Field(2.0, gt=0, description="Upper clamp of rules × model size multiplier")
    tp_multiplier_bounds: tuple[float, float] = Field((0.5, 2.0), description="Clamp of rule TP multipliers")
    sl_multiplier_bounds: tuple[float, float] = Field((0.5, 2.0), description="Clamp of rule SL multipliers")
    atr_stop_multiplier: float = Field(2.0, gt=0, description="R-SE-4: stop distance = min(mult × ATR, ...)")
    max_loss_usdt: float = Field(2.0, gt=0, description="R-SE-4: stop distance ≤ max_loss_usdt / qty")
    take_profit_margin_pct: float = Field(10.0, gt=0, description="R-SE-4: TP nets ≥ this % of the margins")
    taker_fee_rate: float = Field(0.0005, ge=0, lt=0.01, description="Fee rate assumed by TP/cost planning")
    target_volatility: float | None = Field(
        None, gt=0, description="R-SE-7: annualised vol at which size is unscaled; None = no vol scaling"
    )

    @field_validator("score_bands")
    @classmethod
    def _bands_descending(cls, value: list[ScoreBand]) -> list[ScoreBand]:
        thresholds = [band.min_probability for band in value]
        if thresholds != sorted(thresholds, reverse=True) or thresholds[-1] != 0:
            raise ValueError("bands must be in descending min_probability order and end at 0")
        return value

    @model_validator(mode="after")
    def _clamps(self) -> StrategyConfig:
        if self.size_multiplier_min > self.size_multiplier_max:
            raise ValueError("size_multiplier_min must not exceed size_multiplier_max")
        for name in ("tp_multiplier_bounds", "sl_multiplier_bounds"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high")
        return self


# ---- position manager ------------------------------------------------------------------------------
class PositionConfig(Section):
    """R-PM-1 position management (ROE = unrealized PnL / isolated margin, in %)."""

    add_on_roe_pct: list[float] = Field([5.0, 10.0], max_length=2, description="ROE levels of the add-ons (max 2)")
    add_on_fraction: float = Field(1.0, gt=0, le=2, description="Add-on quantity as a fraction of the first entry")
    breakeven_roe_pct: float = Field(10.0, gt=0, description="ROE that moves the stop to net breakeven")
    lock_roe_pct: float = Field(20.0, gt=0, description="ROE that moves the stop to lock a net profit")
    lock_net_pct: float = Field(10.0, ge=0, description="Net profit locked (% of margin) at lock_roe_pct")
    partial_close_roe_pct: float = Field(12.0, gt=0, description="ROE that closes the first entry's quantity")
    max_holding_s: float = Field(86_400.0, gt=0, description="Close any position held longer than this")
    sweep_interval_s: float = Field(5.0, ge=1, le=10, description="Backstop sweep period (event-driven otherwise)")

    @field_validator("add_on_roe_pct")
    @classmethod
    def _ascending(cls, value: list[float]) -> list[float]:
        if value != sorted(value) or any(level <= 0 for level in value):
            raise ValueError("levels must be positive and ascending")
        return value


# ---- risk ----------------------------------------------------------------------------------------
class RiskConfig(Section):
    leverage: int = Field(10, ge=1, le=125, description="Futures leverage used for sizing")
    max_leverage: int = Field(20, ge=1, le=125, description="Hard cap on any position's leverage")
    max_loss_per_trade_pct: float = Field(1.0, gt=0, le=3, description="Per-trade max loss, % of equity (1–3)")
    daily_drawdown_stop_pct: float = Field(5.0, gt=0, le=10, description="Daily drawdown that stops trading")
    kill_switch_drawdown_pct: float = Field(15.0, gt=0, le=100, description="Drawdown that flattens everything")
    max_capital_in_use_pct: Percent = Field(50.0, description="Capital in use cap, % of equity")
    max_consecutive_losses: int = Field(5, ge=1, description="Stop after this many losses in a row")
    min_trade_interval_s: float = Field(30.0, ge=0, description="Minimum time between entries per symbol")
    max_trades_per_24h: int = Field(100, ge=1, description="Entries per rolling 24 h")
    max_abs_funding_rate: float = Field(0.001, ge=0, description="L0 gate: |next funding| above this skips")
    max_spread_bps: float = Field(10.0, gt=0, description="L0 gate: spread above this skips")
    min_depth_top1_usdt: float = Field(5_000.0, ge=0, description="L0 gate: top-of-book depth minimum")
    max_concurrent_entries_per_market: int = Field(5, ge=1, description="Open entries per market")
    spot_notional_budget_usdt: float = Field(1_000.0, ge=0, description="Σ spot notional budget")
    high_volatility_throttle: float = Field(
        3.0, ge=1, description="In high volatility the minimum trade interval is multiplied by this"
    )
    circuit_breaker_move_pct: float = Field(
        5.0, gt=0, description="A price move larger than this within the window halts entries on the symbol"
    )
    circuit_breaker_window_s: float = Field(60.0, gt=0, description="Window of the violent-move check")
    circuit_breaker_cooldown_s: float = Field(900.0, ge=0, description="How long a tripped symbol stays halted")
    min_liquidity_score: float = Field(
        0.2, ge=0, le=1, description="Symbols with liq_score below this are disabled; above it sizes scale by it"
    )
    futures_margin_budget_usdt: float = Field(500.0, ge=0, description="Σ futures margin budget")

    @model_validator(mode="after")
    def _leverage_cap(self) -> RiskConfig:
        if self.leverage > self.max_leverage:
            raise ValueError("leverage must not exceed max_leverage")
        return self


# ---- execution -----------------------------------------------------------------------------------
class RoutingBucket(Section):
    """One row of the R-EX-1 routing table: orders with notional in [min, next bucket's min)."""

    min_notional_usdt: float = Field(ge=0)
    maker_wait_ms: int = Field(gt=0)
    slices: int = Field(ge=1)
    slice_interval_ms: int = Field(ge=0)


DEFAULT_ROUTING = [
    RoutingBucket(min_notional_usdt=0, maker_wait_ms=1500, slices=1, slice_interval_ms=0),
    RoutingBucket(min_notional_usdt=200, maker_wait_ms=2000, slices=2, slice_interval_ms=600),
    RoutingBucket(min_notional_usdt=500, maker_wait_ms=2500, slices=3, slice_interval_ms=800),
    RoutingBucket(min_notional_usdt=1000, maker_wait_ms=3000, slices=4, slice_interval_ms=1000),
]


class ExecutionConfig(Section):
    base_margin_usdt: float = Field(20.0, gt=0, description="R-SE-4 base margin per entry")
    routing: list[RoutingBucket] = Field(DEFAULT_ROUTING, min_length=1, description="Routing table (R-EX-1)")
    maker_fill_ratio_min: float = Field(0.5, ge=0, le=1, description="θ: below this, fall back to taker")
    twap_jitter_pct: float = Field(10.0, ge=0, le=50, description="Jitter on TWAP slice intervals")
    liquidity_probe_factor: float = Field(2.0, gt=0, description="spread > factor × 1 h mean ⇒ wait or split")
    liquidity_probe_wait_ms: int = Field(5000, ge=0, description="Wait when the probe fails")
    degrade_maker_fill_ratio: float = Field(0.25, ge=0, le=1, description="1 h maker fill ratio ⇒ market only")
    degrade_routing_p95_ms: float = Field(500.0, gt=0, description="Routing p95 above this ⇒ no TWAP/maker")
    degrade_insufficient_balance_rate: float = Field(0.1, ge=0, le=1, description="⇒ reduce size or queue")
    reconcile_interval_s: float = Field(300.0, gt=0, description="Reconciler period")
    orphan_policy: Literal["RECLAIM_IF_SAFE", "CONSERVATIVE"] = Field(
        "RECLAIM_IF_SAFE", description="What the reconciler does with positions/orders not in the ledger"
    )
    transfers_enabled: bool = Field(
        False, description="Move money spot↔futures when an order is refused for want of balance (R-EX-6)"
    )
    transfer_max_usdt: float = Field(1_000.0, ge=0, description="Cap of one spot↔futures transfer")
    transfer_min_reserve_usdt: float = Field(50.0, ge=0, description="Never transfer below this reserve")
    transfer_daily_max_usdt: float = Field(5_000.0, ge=0, description="Cap of all transfers in one UTC day")
    cooldown_s: float = Field(60.0, ge=0, description="Signal cooldown per symbol and side")

    @field_validator("routing")
    @classmethod
    def _routing_sorted(cls, value: list[RoutingBucket]) -> list[RoutingBucket]:
        bounds = [b.min_notional_usdt for b in value]
        if bounds != sorted(bounds) or len(set(bounds)) != len(bounds) or bounds[0] != 0:
            raise ValueError("buckets must start at 0 and have strictly increasing min_notional_usdt")
        return value


# ---- matching engine and backtests ---------------------------------------------------------------
class LatencyConfig(Section):
    """One latency model (R-BT-2). Every random draw is seeded from the run's seed."""

    model: Literal["constant", "lognormal", "normal", "measured", "recorded"] = Field(
        "constant",
        description="constant; lognormal (min_ms + log-normal with median_ms, sigma); normal (mean_ms, std_ms, "
        "truncated at min_ms); measured (drawn from samples_file); recorded (feed only: the recording's "
        "receive times, shifted so the smallest delay is 0)",
    )
    constant_ms: float = Field(0.0, ge=0, description="Delay of the constant model")
    median_ms: float = Field(1.0, gt=0, description="Median of the log-normal part")
    sigma: float = Field(0.5, ge=0, description="Shape of the log-normal part")
    mean_ms: float = Field(1.0, ge=0, description="Mean of the normal model")
    std_ms: float = Field(0.5, ge=0, description="Standard deviation of the normal model")
    min_ms: float = Field(0.0, ge=0, description="Floor added to (log-normal) or imposed on (normal) draws")
    samples_file: Path | None = Field(
        None, description="measured: lines of entry_ms,response_ms (or one round-trip value, split in half)"
    )


class FeeRatesConfig(Section):
    maker: Decimal = Field(description="Maker rate as a fraction (0.0002 = 0.02 %)")
    taker: Decimal = Field(description="Taker rate as a fraction")


class MatchingConfig(Section):
    """The matching engine shared by backtests, paper trading and the simulator."""

    spot_fee_tier: int = Field(0, ge=0, le=9, description="Spot VIP tier of the published fee schedule")
    futures_fee_tier: int = Field(0, ge=0, le=9, description="USD-M VIP tier of the published fee schedule")
    fee_overrides: dict[Market, FeeRatesConfig] = Field({}, description="Rates replacing the tier's, per market")
    queue_model: Literal["risk_averse", "power", "log"] = Field(
        "power", description="How cancellations at our price level move our queue position (docs/matching.md)"
    )
    queue_power: float = Field(2.0, gt=0, description="Exponent n of the power queue model")
    feed_latency: LatencyConfig = Field(
        LatencyConfig(model="constant", constant_ms=5.0), description="Exchange → strategy market data delay"
    )
    order_entry_latency: LatencyConfig = Field(
        LatencyConfig(model="constant", constant_ms=10.0), description="Strategy → exchange order delay"
    )
    order_response_latency: LatencyConfig = Field(
        LatencyConfig(model="constant", constant_ms=10.0), description="Exchange → strategy report delay"
    )
    book_window_ticks: int = Field(
        262_144, ge=1024, description="Ticks of book kept per symbol around the market (deeper levels are ignored)"
    )
    default_leverage: int = Field(20, ge=1, le=125, description="USD-M leverage of a symbol until set")
    default_margin_type: Literal["CROSSED", "ISOLATED"] = Field("CROSSED", description="USD-M margin type until set")
    leverage_brackets_file: Path | None = Field(
        None, description="GET /fapi/v1/leverageBracket JSON; built-in BTC/ETH and generic tables otherwise"
    )
    liquidation_fee_rate: Decimal = Field(
        Decimal("0.0125"), ge=0, le=1, description="Liquidation fee when the instrument does not state one"
    )
    bar_market_reserve: Decimal = Field(
        Decimal("0.1"),
        ge=0,
        le=10,
        description="Spot market-like buys that wait (bar mode, stops) lock this much above the reference price",
    )


class BacktestConfig(Section):
    runs_dir: Path = Field(Path("data/runs"), description="Where `kestrel backtest` writes data/runs/{run_id}/")
    spot_balances: dict[str, Decimal] = Field(
        {"USDT": Decimal(10_000)}, description="Starting spot balances (only when the run trades spot)"
    )
    futures_balances: dict[str, Decimal] = Field(
        {"USDT": Decimal(10_000)}, description="Starting USD-M wallet (only when the run trades futures)"
    )
    equity_interval_s: float = Field(1.0, gt=0, description="Equity curve sampling interval (at least one bar)")
    require_snapshot: bool = Field(
        True, description="Build books only from a REST snapshot (False: from diffs alone when a file has none)"
    )
    bar_order_latency_ms: float = Field(
        0.0, ge=0, description="Order latency on kline data (0: orders sent at a close fill at the next open)"
    )


# ---- api / alerts / logging ----------------------------------------------------------------------
class ApiConfig(Section):
    host: str = Field("127.0.0.1", description="Bind address of the API gateway")
    port: int = Field(8000, ge=0, le=65535, description="Port (0 picks a free one)")
    admin_token: SecretStr | None = Field(None, description="Bearer token of the admin role")
    operator_token: SecretStr | None = Field(None, description="Bearer token of the operator role")
    viewer_token: SecretStr | None = Field(None, description="Bearer token of the read-only role")
    signing_secret: SecretStr | None = Field(None, description="HMAC secret signing the signal endpoints")
    rate_limit_per_minute: int = Field(600, ge=1, description="Requests per minute per client")


class TelegramConfig(Section):
    bot_token: SecretStr
    chat_id: str


class EmailConfig(Section):
    smtp_host: str
    smtp_port: int = Field(587, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    sender: str
    recipients: list[str] = Field(min_length=1)


class AlertsConfig(Section):
    telegram: TelegramConfig | None = Field(None, description="Telegram bot alerts")
    email: EmailConfig | None = Field(None, description="Email alerts")
    webhooks: list[SecretStr] = Field([], description="Discord/Slack/generic webhook URLs (they embed tokens)")
    min_severity: Literal["info", "warning", "critical"] = Field("warning", description="Lowest level sent")
    slo_windows: int = Field(3, ge=1, description="SLO violated this many windows in a row ⇒ alert")


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Root log level")
    format: Literal["console", "json"] = Field("console", description="console for people, json for machines")
    file: Path | None = Field(None, description="Also write JSON lines here")


# ---- the whole ----------------------------------------------------------------------------------
class KestrelConfig(BaseSettings):
    """The effective configuration: YAML file < .env < environment (`KESTREL__SECTION__FIELD`)."""

    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        env_prefix="KESTREL__",
        env_nested_delimiter="__",
        validate_default=True,
    )

    environment: Literal["dev", "paper", "prod"] = Field(
        description="Which deployment this file describes; required in every file"
    )
    seed: int = Field(42, ge=0, description="Seed of every random generator (backtests are reproducible)")
    venue: VenueConfig = VenueConfig()
    data: DataConfig = DataConfig()
    storage: StorageConfig = StorageConfig()
    feature: FeatureConfig = FeatureConfig()
    model: ModelConfig = ModelConfig()
    strategy: StrategyConfig = StrategyConfig()
    position: PositionConfig = PositionConfig()
    risk: RiskConfig = RiskConfig()
    execution: ExecutionConfig = ExecutionConfig()
    matching: MatchingConfig = MatchingConfig()
    backtest: BacktestConfig = BacktestConfig()
    api: ApiConfig = ApiConfig()
    alerts: AlertsConfig = AlertsConfig()
    logging: LoggingConfig = LoggingConfig()
    research: ResearchConfig = ResearchConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Highest priority first: the environment overrides the init values (the YAML file with .env
        # merged over it by `load_config`), which override the model defaults.
        return env_settings, init_settings, file_secret_settings

    @model_validator(mode="after")
    def _prod_rules(self) -> KestrelConfig:
        if self.environment == "prod" and self.venue.name != "binance":
            raise ValueError("prod must point at the real exchange (venue.name: binance)")
        return self
