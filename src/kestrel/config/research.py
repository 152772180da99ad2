"""The `research` section: datasets, bar features, labels, costs, validation, models, HPO and gates.

`kestrel train --config FILE` reads this section (with `feature`, `model`, `storage` and `seed`).
Paths may start with ``shared:`` for the shared real-data folder (../shared/data/binance).
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class KlineSource(_Section):
    symbol: str = Field(min_length=1, description="Symbol name used in datasets and model cards")
    path: str = Field(min_length=1, description="Bars file (.feather freqtrade layout, .parquet or .csv)")
    funding_path: str | None = Field(None, description="Settled funding rates (futures); None = no funding")


DEFAULT_KLINES = [
    KlineSource(
        symbol="BTCUSDT",
        path="shared:freqtrade_userdata_roshan7869/futures/BTC_USDT_USDT-1h-futures.feather",
        funding_path="shared:freqtrade_userdata_roshan7869/futures/BTC_USDT_USDT-1h-funding_rate.feather",
    ),
    KlineSource(
        symbol="ETHUSDT",
        path="shared:freqtrade_userdata_roshan7869/futures/ETH_USDT_USDT-1h-futures.feather",
        funding_path="shared:freqtrade_userdata_roshan7869/futures/ETH_USDT_USDT-1h-funding_rate.feather",
    ),
]


class ResearchDataConfig(_Section):
    klines: list[KlineSource] = Field(DEFAULT_KLINES, min_length=1, description="One bar series per symbol")
    start: date | None = Field(date(2020, 1, 1), description="First bar open date (UTC); None = all")
    end: date | None = Field(None, description="Bars open before this date (UTC); None = all")
    last_bars: int | None = Field(None, ge=100, description="Keep only each symbol's last N bars (quick runs)")


class BarFeatureConfig(_Section):
    return_windows: list[int] = Field([1, 4, 24], min_length=1, description="log_return_k windows (bars)")
    rv_windows: list[int] = Field([24, 168], min_length=2, description="Realised-vol windows; first/last → rv_ratio")
    rv_percentile_lookback: int = Field(720, ge=2, description="Bars in the rv percentile lookback")
    bollinger_period: int = Field(20, ge=2, description="Bollinger (and volume SMA) period")
    bollinger_k: float = Field(2.0, gt=0, description="Bollinger band width in standard deviations")
    squeeze_lookback: int = Field(120, ge=2, description="Bars over which a squeeze is the minimum width")
    trend_ema_period: int = Field(48, ge=2, description="EMA of the trend feature (close − EMA)/ATR")
    correlation_window: int = Field(72, ge=2, description="Bars in the cross-asset return correlation")


class LabelConfig(_Section):
    horizon_bars: int = Field(24, ge=1, description="H: triple-barrier horizon (vertical barrier)")
    upper_atr: float = Field(2.0, gt=0, description="Upper barrier distance in ATRs")
    lower_atr: float = Field(2.0, gt=0, description="Lower barrier distance in ATRs")
    forward_bars: int = Field(24, ge=1, description="K: forward return horizon of the regressor target")


class CostConfig(_Section):
    taker_fee_bps: float = Field(5.0, ge=0, description="Taker fee per side (USD-M default tier 0.05 %)")
    maker_fee_bps: float = Field(2.0, ge=0, description="Maker fee per side")
    slippage_bps: float = Field(1.0, ge=0, description="Slippage per side when no fitted model applies")
    slippage_quantile: Literal["p2_5", "p50", "p97_5"] = Field("p50", description="Fitted quantile used in C")
    order_notional_usdt: float = Field(200.0, gt=0, description="Order size the costs are computed for")
    funding_interval_s: int = Field(28_800, gt=0, description="Seconds between funding settlements")
    slippage_recordings: list[str] = Field(
        [], description="Raw recordings (trades + book) to fit slippage quantiles from; [] = constant"
    )


class CrossValidationConfig(_Section):
    scheme: Literal["purged_kfold", "walk_forward"] = Field("purged_kfold", description="Leak-free splitter")
    folds: int = Field(5, ge=2, le=50, description="Number of test folds")
    embargo_bars: int | None = Field(None, ge=0, description="Embargo after each test fold; None = H")
    max_train_bars: int | None = Field(None, ge=10, description="Walk-forward training window; None = expanding")


class LightGbmParams(_Section):
    n_estimators: int = Field(300, ge=1, description="Boosting rounds")
    learning_rate: float = Field(0.03, gt=0, le=1, description="Shrinkage")
    num_leaves: int = Field(15, ge=2, description="Leaves per tree")
    min_child_samples: int = Field(400, ge=1, description="Minimum samples per leaf")
    feature_fraction: float = Field(0.8, gt=0, le=1, description="Features sampled per tree")
    bagging_fraction: float = Field(0.8, gt=0, le=1, description="Rows sampled per iteration")
    lambda_l2: float = Field(1.0, ge=0, description="L2 regularisation")
    threads: int = Field(
        1, ge=1, le=64, description="Training threads; results are deterministic per count (1 is fastest on a busy box)"
    )


class LogisticParams(_Section):
    c: float = Field(0.1, gt=0, description="Inverse regularisation strength of the baseline")
    max_iter: int = Field(1000, ge=10, description="Solver iterations")


class HpoConfig(_Section):
    """Optuna search on J = α·PR-AUC + β·Hit@K + γ·Avg(U) − δ·FPR; ranges follow the seeds where they
    apply to gradient boosting (normalisation window 256–2048 samples)."""

    trials: int = Field(0, ge=0, description="Optuna trials; 0 = train with the configured parameters")
    timeout_s: float | None = Field(None, gt=0, description="Stop the search after this long")
    alpha: float = Field(1.0, description="Weight of PR-AUC in J")
    beta: float = Field(1.0, description="Weight of Hit@TopK in J")
    gamma: float = Field(0.1, description="Weight of average utility in J")
    delta: float = Field(0.5, description="Weight of the false-positive rate in J")
    learning_rate: tuple[float, float] = Field((0.01, 0.1), description="Search range (log scale)")
    num_leaves: tuple[int, int] = Field((7, 63), description="Search range")
    min_child_samples: tuple[int, int] = Field((50, 2000), description="Search range (log scale)")
    feature_fraction: tuple[float, float] = Field((0.5, 1.0), description="Search range")
    n_estimators: tuple[int, int] = Field((100, 600), description="Search range")
    normalisation_window: tuple[int, int] = Field((256, 2048), description="Search range (seeds: 256–2048)")


class MetricsConfig(_Section):
    hit_at_k_fraction: float = Field(0.05, gt=0, le=1, description="Top share of scores Hit@K looks at")
    reliability_buckets: int = Field(10, ge=2, le=100, description="Equal-width probability buckets")
    min_bucket_count: int = Field(100, ge=1, description="Samples that make a bucket 'populated'")
    fdr_alpha: float = Field(0.05, gt=0, lt=1, description="Benjamini–Hochberg false discovery rate")
    high_vol_percentile: float = Field(0.8, gt=0, lt=1, description="rv percentile at or above ⇒ high-vol")
    trend_atr: float = Field(1.5, gt=0, description="|close − EMA| in ATRs at or above ⇒ trend")


class GateConfig(_Section):
    """R-RS-9 golden rule: promote only stable and profitable, calibrated models."""

    min_stable_fold_share: float = Field(0.8, gt=0, le=1, description="Share of folds with ROC-AUC > 0.5")
    max_fold_auc_std: float = Field(0.05, gt=0, description="Largest allowed std of ROC-AUC across folds")
    min_profitable_fold_share: float = Field(
        0.6, ge=0, le=1, description="Share of folds whose trades must earn a positive mean net return"
    )
    min_trades: int = Field(30, ge=1, description="Out-of-fold trades (p ≥ τ) needed to judge profit")
    min_mean_net_return_bps: float = Field(0.0, description="Mean net return per OOF trade must exceed this")
    require_edge_over_always_long: bool = Field(
        True, description="Trades must beat the mean net return of going long on every sample (market drift)"
    )
    require_significant_profit: bool = Field(
        True, description="The 'net return > 0' test must be a discovery under FDR control"
    )
    calibration_max_pp: float = Field(5.0, gt=0, le=100, description="Worst populated bucket error allowed")


class ResearchConfig(_Section):
    model_name: str = Field("kline_direction", pattern=r"^[A-Za-z0-9_.-]+$", description="Registry model name")
    data: ResearchDataConfig = ResearchDataConfig()
    bars: BarFeatureConfig = BarFeatureConfig()
    labels: LabelConfig = LabelConfig()
    costs: CostConfig = CostConfig()
    cv: CrossValidationConfig = CrossValidationConfig()
    lightgbm: LightGbmParams = LightGbmParams()
    logistic: LogisticParams = LogisticParams()
    hpo: HpoConfig = HpoConfig()
    metrics: MetricsConfig = MetricsConfig()
    gates: GateConfig = GateConfig()
    shap_rows: int = Field(2000, ge=0, description="Rows explained by full SHAP offline (0 = skip)")
    explain_top_k: int = Field(5, ge=1, description="Top-K feature contributions served online")
    register_model: bool = Field(True, description="Register the trained model as a new registry version")

    @model_validator(mode="after")
    def _symbols_unique(self) -> ResearchConfig:
        symbols = [source.symbol for source in self.data.klines]
        if len(set(symbols)) != len(symbols):
            raise ValueError("data.klines: symbols must be unique")
        if self.data.start and self.data.end and self.data.end <= self.data.start:
            raise ValueError("data.end must be after data.start")
        return self
