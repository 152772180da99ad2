"""The `pipeline` strategy inside the running TradingNode: paper mode on the Binance venue against the
simulator over real sockets — decisions on live books, intents executed, orders in the ledger."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from kestrel.config.loading import load_config
from kestrel.core.enums import Market
from kestrel.node import TradingNode, VenueKind
from kestrel.sim import MarketSimulator, SimulatorOptions
from kestrel.sim.trading.options import SimAccount, TradingOptions
from kestrel.storage.ledger import Ledger
from kestrel.strategy.pipeline import PipelineStrategy
from tests.marketdata.simulated import venue_overrides

KEY = "PipelineKey0123456789"
SECRET = "PipelineSecret0123456789abcdef"


@pytest.mark.slow
async def test_the_node_runs_the_pipeline_on_live_books(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = SimulatorOptions(
        markets=(Market.FUTURES,), symbols=["BTCUSDT"], seed=3, data_dir=shared_data,
        trading=TradingOptions(accounts=[SimAccount(name="node", api_key=KEY, api_secret=SECRET,
                                                    futures={"USDT": Decimal(100_000)})]),
    )  # fmt: skip
    async with MarketSimulator(options) as sim:
        document = {
            "environment": "dev", "venue": venue_overrides(sim),
            "data": {"ingest": {"markets": ["futures"], "symbols": ["BTCUSDT"], "streams": ["depth@100ms"]}},
            "storage": {"ledger_url": f"sqlite:///{tmp_path / 'ledger.sqlite'}", "data_dir": str(tmp_path)},
            "feature": {"atr_period": 3},
            "strategy": {"max_loss_usdt": 50},
            "risk": {"min_depth_top1_usdt": 0, "min_liquidity_score": 0, "max_spread_bps": 100},
            "execution": {"cooldown_s": 0},
        }  # fmt: skip
        path = tmp_path / "pipeline.yaml"
        path.write_text(yaml.safe_dump(document))
        monkeypatch.setenv("KESTREL__VENUE__API_KEY", KEY)
        monkeypatch.setenv("KESTREL__VENUE__API_SECRET", SECRET)
        config = load_config(path, env_file=None)
        strategy = PipelineStrategy({"config": str(path), "bar_ms": "200", "trend_bps": "0.01"})
        summary = await TradingNode(config, strategy, mode="paper", venue_kind=VenueKind.BINANCE).run(duration_s=6.0)
    assert summary.strategy_errors == 0 and summary.market_events > 0
    assert strategy.decisions >= 1
    assert strategy.intents, f"no entry in {strategy.decisions} decisions: {dict(strategy.skip_reasons)}"
    intent = strategy.intents[0]
    assert summary.orders >= 1
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    assert ledger.intent_states().get(intent.intent_id) in ("PENDING_ENTRY", "ACTIVE", "CLOSED")
    assert {o.intent_id for o in ledger.orders(intent.intent_id)} == {intent.intent_id}
    assert ledger.signal_decisions()  # the entered signal is recorded
    ledger.close()
