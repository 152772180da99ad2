"""Sustained decisions per second of the trading node's decision path across 300 symbols.

Each decision is what the `pipeline` strategy does on a book update: the symbol's book features are
updated from its top of book (`BookFeatures`), a `MarketState` is built, and `DecisionEngine.decide`
runs the whole path — de-dup and cooldown, L0 gate, L1 rules (config/pipeline-rules.yaml), L2 model
score, sizing on the exchange grid, risk limits — to a Signal and, when taken, an Intent.

The model is a logistic model through the scoring API (`LogisticScorer`, fixed coefficients over the
book features), not the research registry's ONNX model: the registry's example model is trained on
hourly kline features that the book path does not compute, so serving it here would score
meaningless inputs (its own latency is measured by benchmarks/onnx_inference.py).

Instruments are the first 300 trading USD-M perpetuals of the shared exchangeInfo, with their real
price and lot filters; books are synthetic (seeded random walk on each tick grid). Cooldown, minimum
trade interval and the 24 h entry cap are set so that decisions keep reaching sizing and risk instead
of stopping at the cheap cooldown check; the outcome counts show where decisions ended. Prints JSON.

    ./dev run python benchmarks/node_decisions.py [--decisions N] [--symbols 300]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kestrel.binance.schemas.exchange_info import parse_exchange_info
from kestrel.config.models import ExecutionConfig, RiskConfig, StrategyConfig
from kestrel.config.paths import shared_data_dir
from kestrel.core.clock import SimClock
from kestrel.core.enums import Decision, Market, Side
from kestrel.core.instrument import Instrument
from kestrel.risk.limits import RiskEngine
from kestrel.strategy.book_features import BookFeatures, FeatureSettings
from kestrel.strategy.engine import DecisionEngine, Exposure, MarketState
from kestrel.strategy.rules import RuleBook
from kestrel.strategy.scoring import LogisticScorer

ROOT = Path(__file__).resolve().parents[1]
EXCHANGE_INFO = "exchange_info/usdm_exchangeInfo_2025-03-06_baouih.json"
MS = 1_000_000


class SyntheticBook:
    """A top of book on the instrument's grid: the `BookView` attributes the features read."""

    def __init__(self, instrument: Instrument, rng: random.Random) -> None:
        self.symbol = str(instrument.symbol)
        self.tick = instrument.tick_size
        self.rng = rng
        self.bid_ticks = 100_000
        self.best_bid_price: Decimal | None = None
        self.best_ask_price: Decimal | None = None
        self.best_bid_qty = Decimal(0)
        self.best_ask_qty = Decimal(0)
        self.step()

    def step(self) -> None:
        self.bid_ticks += self.rng.randint(-4, 4)
        spread = self.rng.choice((1, 1, 1, 2))
        self.best_bid_price = self.tick * self.bid_ticks
        self.best_ask_price = self.tick * (self.bid_ticks + spread)
        notional = Decimal(self.rng.randint(20_000, 400_000))
        self.best_bid_qty = (notional / self.best_bid_price).quantize(Decimal("0.001"))
        self.best_ask_qty = (notional / self.best_ask_price * Decimal("0.8")).quantize(Decimal("0.001"))


def instruments(count: int) -> list[Instrument]:
    shared = shared_data_dir()
    if shared is None:
        raise SystemExit("node_decisions: the shared data folder (exchangeInfo) is not available")
    payload = json.loads((shared / EXCHANGE_INFO).read_text())
    found = [
        i
        for i in parse_exchange_info(payload, Market.FUTURES)
        if i.contract_type == "PERPETUAL" and i.quote_asset == "USDT" and i.status.value == "TRADING"
    ]
    if len(found) < count:
        raise SystemExit(f"node_decisions: only {len(found)} USDT perpetuals in the exchangeInfo")
    return found[:count]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=60_000)
    parser.add_argument("--symbols", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    chosen = instruments(args.symbols)
    table = {(i.market, str(i.symbol)): i for i in chosen}
    risk_config = RiskConfig(
        min_trade_interval_s=0, max_trades_per_24h=10_000_000, max_capital_in_use_pct=100, max_spread_bps=50,
        min_depth_top1_usdt=1_000, min_liquidity_score=0.0,
    )  # fmt: skip
    clock = SimClock(1_700_000_000_000_000_000)
    start_ns = clock.timestamp_ns()
    rules = RuleBook.from_file(ROOT / "config/pipeline-rules.yaml")
    model = LogisticScorer({"micro_trend": 0.4, "qi": 0.8, "delta_mid": 0.2, "spread_bps": -0.05}, 0.1)
    engine = DecisionEngine(
        "bench", StrategyConfig(max_loss_usdt=50), risk_config, ExecutionConfig(cooldown_s=0), rules,
        RiskEngine(risk_config, Decimal(10_000_000), start_ns), table, clock, model, config_rev="bench",
    )  # fmt: skip
    settings = FeatureSettings(bar_ns=100 * MS, atr_period=5)
    books = [SyntheticBook(i, rng) for i in chosen]
    features = [BookFeatures(settings) for _ in chosen]
    keys = list(table)
    exposure = Exposure()
    # warm up: every symbol's ATR ready (5 bars of 100 ms), every code path compiled and cached
    for _ in range(8):
        clock.advance_to(clock.timestamp_ns() + 100 * MS)
        for book, feature in zip(books, features, strict=True):
            book.step()
            feature.update(book, clock.timestamp_ns())  # type: ignore[arg-type]
    outcomes: Counter[str] = Counter()
    last_skip = ""
    sides = (Side.BUY, Side.SELL)
    count = len(chosen)
    started = time.perf_counter()
    for n in range(args.decisions):
        index = n % count
        clock.advance_to(clock.timestamp_ns() + 10_000)  # 10 µs of market time per update
        now = clock.timestamp_ns()
        book, feature = books[index], features[index]
        book.step()
        feature.update(book, now)  # type: ignore[arg-type]
        market, symbol = keys[index]
        state = MarketState(
            market, symbol, feature.mid, feature.spread_bps, feature.depth_top1_usdt, feature.atr, feature.values,
            now, now, liquidity_score=feature.values["liq_score"], degraded=feature.degraded,
        )  # fmt: skip
        outcome = engine.decide(state, sides[n & 1], exposure)
        signal = outcome.signal
        if signal.decision is Decision.ENTER:
            outcomes["enter"] += 1
        else:
            outcomes["skip: " + (signal.reasons[-1].split(":")[0] if signal.reasons else "?")] += 1
            last_skip = signal.reasons[-1] if signal.reasons else ""
    elapsed = time.perf_counter() - started
    print(
        json.dumps(
            {
                "benchmark": "node_decisions",
                "symbols": count,
                "decisions": args.decisions,
                "seconds": round(elapsed, 3),
                "decisions_per_second": round(args.decisions / elapsed),
                "mean_us_per_decision": round(elapsed / args.decisions * 1e6, 2),
                "path": "book features + de-dup/cooldown + L0 gate + L1 rules (3) + L2 logistic + sizing + risk",
                "model": "logistic (kestrel.strategy.scoring.LogisticScorer), not the registry's ONNX model",
                "outcomes": dict(outcomes.most_common()),
                "last_skip_reason": last_skip,
                "python": platform.python_version(),
                "machine": platform.machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
