"""The `pipeline` strategy in a deterministic backtest (SimVenue) on a real USD-M recording: a signal
becomes an intent, the intent a maker order at the touch, an unfilled maker wait a taker fallback, a
larger intent TWAP slices at their jittered delays, and the position manager's stop an exit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kestrel.backtest.driver import BacktestResult, run_backtest
from kestrel.backtest.setup import BacktestRequest, prepare
from kestrel.config.loading import load_config
from kestrel.core.enums import Decision, OrderStatus, OrderType, Side, TimeInForce
from kestrel.core.errors import ConfigurationError
from kestrel.core.identifiers import client_order_id
from kestrel.execution.executor import Leg
from kestrel.strategy.loading import load_strategy
from kestrel.strategy.pipeline import PipelineStrategy

RECORDING = "hftbacktest/usdm/btcusdt_20240718.gz"
REPO = Path(__file__).resolve().parents[2]
MS = 1_000_000


def pipeline_config(directory: Path) -> Path:
    """config/pipeline.yaml with an absolute rules path and a 30 USDT margin (a two-slice bucket)."""
    document = yaml.safe_load((REPO / "config/pipeline.yaml").read_text())
    document["strategy"]["rules_file"] = str(REPO / "config/pipeline-rules.yaml")
    document["execution"].update(base_margin_usdt=30, degrade_maker_fill_ratio=0.0)
    document["storage"] = {"data_dir": str(directory), "ledger_url": f"sqlite:///{directory}/ledger.sqlite"}
    path = directory / "pipeline.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def run(shared: Path, config_path: Path, **params: str) -> tuple[BacktestResult, PipelineStrategy]:
    request = BacktestRequest(
        "pipeline", [shared / RECORDING], load_config(config_path), ["BTCUSDT"],
        {"config": str(config_path), **params}, seed=1,
    )  # fmt: skip
    prepared = prepare(request)
    result = run_backtest(prepared.setup)
    strategy = prepared.setup.strategy
    assert isinstance(strategy, PipelineStrategy)
    return result, strategy


@pytest.fixture(scope="module")
def backtest(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[BacktestResult, PipelineStrategy]:
    return run(shared_data, pipeline_config(tmp_path_factory.mktemp("pipeline")))


def orders_by_id(result: BacktestResult) -> dict[str, Any]:
    return {str(order.client_order_id): order for order in result.orders}


def test_a_signal_becomes_an_intent_and_a_post_only_maker_order_at_the_touch(backtest) -> None:  # type: ignore[no-untyped-def]
    result, strategy = backtest
    assert strategy.decisions >= 1 and strategy.signals_entered
    signal, intent = strategy.signals_entered[0], strategy.intents[0]
    assert signal.decision is Decision.ENTER and intent.signal_id == signal.signal_id
    assert signal.ts_event <= signal.ts_init <= signal.ts_infer
    maker_id = client_order_id(intent.intent_id, "m0", 0)  # derived from the intent: replays send the same id
    maker = orders_by_id(result)[maker_id]
    assert maker.order_type is OrderType.LIMIT and maker.time_in_force is TimeInForce.GTX
    assert maker.side is intent.side and maker.quantity > 0
    execution = strategy.executor.executions[intent.intent_id]
    record = execution.order_for(Leg.MAKER, 0)
    assert record is not None and record.client_order_id == maker_id and record.mid_at_send is not None
    touch_gap_bps = abs(float(maker.price) - record.mid_at_send) / record.mid_at_send * 1e4
    assert touch_gap_bps < 5  # at the near touch, half a spread from the mid


def test_an_unfilled_maker_wait_falls_back_to_a_taker_order_for_the_remainder(backtest) -> None:  # type: ignore[no-untyped-def]
    result, strategy = backtest
    orders = orders_by_id(result)
    fallbacks = 0
    for execution in strategy.executor.executions.values():
        maker = execution.order_for(Leg.MAKER, 0)
        taker = execution.order_for(Leg.TAKER, 0)
        if maker is None or taker is None:
            continue
        fallbacks += 1
        wait_ms = execution.plan.slices[0].maker_wait_ms
        assert orders[maker.client_order_id].status is OrderStatus.CANCELED
        assert taker.ts_sent_ns - maker.ts_sent_ns >= wait_ms * MS  # only after the bucket's wait
        assert taker.quantity == maker.quantity - maker.filled
        assert orders[taker.client_order_id].order_type is OrderType.MARKET
        assert orders[taker.client_order_id].status is OrderStatus.FILLED
        assert taker.slip_bps is not None  # R-EX-2: every order that traded has its slippage
    assert fallbacks >= 1


def test_twap_slices_are_sent_at_their_jittered_delays(backtest) -> None:  # type: ignore[no-untyped-def]
    _, strategy = backtest
    execution = strategy.executor.executions[strategy.intents[0].intent_id]
    plan = execution.plan
    assert len(plan.slices) == 2 and plan.bucket.slices == 2  # 30 USDT × 10 → the 200-500 USDT bucket
    assert sum((s.quantity for s in plan.slices), start=plan.slices[0].quantity * 0) == execution.intent.quantity
    second = execution.order_for(Leg.MAKER, 1)
    assert second is not None
    assert second.ts_sent_ns - execution.ts_start_ns == plan.slices[1].delay_ms * MS
    interval = plan.bucket.slice_interval_ms
    assert abs(plan.slices[1].delay_ms - interval) <= interval * 0.1  # ±10 % seeded jitter


def test_the_position_managers_stop_closes_the_position(backtest) -> None:  # type: ignore[no-untyped-def]
    result, strategy = backtest
    stops = [e for e in strategy.exits if e.reason.startswith("stop ")]
    assert stops
    stop = stops[0]
    exit_execution = strategy.executor.executions[f"{stop.intent_id}#0"]
    assert exit_execution.intent.reduce_only and exit_execution.done
    (record,) = exit_execution.orders
    exit_order = orders_by_id(result)[record.client_order_id]
    assert exit_order.order_type is OrderType.MARKET and exit_order.status is OrderStatus.FILLED
    entry = strategy.intents[0]
    assert exit_order.side is (Side.SELL if entry.side is Side.BUY else Side.BUY)
    assert exit_order.reduce_only
    entry_key = (entry.market, entry.symbol)
    held = strategy.held.get(entry_key)
    assert held is None or held.entry_intent_id != entry.intent_id  # that position is flat


def test_the_same_recording_and_seed_give_the_same_orders(
    shared_data: Path, tmp_path: Path, backtest: tuple[BacktestResult, PipelineStrategy]
) -> None:
    again, _ = run(shared_data, pipeline_config(tmp_path))
    first = [(o.client_order_id, o.status, o.filled_quantity, o.ts_updated) for o in backtest[0].orders]
    assert [(o.client_order_id, o.status, o.filled_quantity, o.ts_updated) for o in again.orders] == first


def test_a_logistic_model_scores_every_entry(shared_data: Path, tmp_path: Path) -> None:
    _, strategy = run(shared_data, pipeline_config(tmp_path), model="logistic", model_weights="qi=0.2")
    assert strategy.signals_entered
    assert all(s.model_version == "logistic" and s.p_up is not None for s in strategy.signals_entered)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"model": "forest"}, "model 'forest'"),
        ({"model": "logistic", "model_weights": "qi"}, "not name=number"),
        ({"trend_bps": "0"}, "trend_bps > 0"),
        ({"config": "/nonexistent/x.yaml"}, "x.yaml: config: no such file"),
        ({"colour": "red"}, "unknown parameter"),
    ],
)
def test_bad_parameters_name_the_problem(params: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_strategy("pipeline", params)


def test_loadable_by_name() -> None:
    assert isinstance(load_strategy("pipeline", {}), PipelineStrategy)


def test_the_shipped_config_runs_a_backtest_from_the_command_line(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kestrel.cli import main

    monkeypatch.chdir(REPO)  # the shipped config names its rules file relative to the repository
    config = "config/pipeline.yaml"
    code = main(
        [
            "backtest", "--config", config, "--strategy", "pipeline", "--param", f"config={config}",
            "--data", str(shared_data / RECORDING), "--symbols", "BTCUSDT", "--seed", "1", "--out", str(tmp_path),
        ]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    (run_dir,) = tmp_path.iterdir()
    orders = (run_dir / "orders.csv").read_text().splitlines()
    assert len(orders) > 1 and "pipeline" in run_dir.name
