"""Tick-to-order latency inside the trading node: market event received by the feed → order request
written to the socket, p50 / p99 (target p99 ≤ 1 ms).

Paper mode on the Binance venue (`VenueKind.BINANCE`) against the local simulator
(`kestrel.sim.MarketSimulator`, synthetic USD-M BTCUSDT/ETHUSDT) over loopback. The simulator runs in a
child process so its work does not share the node's event loop. The node runs the `pipeline`
strategy's decision path; a probe subclass decides on every `--every`-th book update whatever the
trend (so there are enough samples), cancels the previous entry, and notes which market event the
decision came from. The two clock timestamps:

- start: the depth event's `ts_init`, stamped by the feed when its frame arrived from the socket;
- end: when aiohttp wrote the new-order request's headers to the socket (the HTTP client's
  always-on `sent` record, matched by `newClientOrderId`).

Between them: bus → node → strategy features → DecisionEngine → Executor → GuardedVenue (risk check,
ledger write of the SUBMITTED order, SQLite) → BinanceVenue (scheduled as an asyncio task) → signing
→ aiohttp. The split at the executor's `submit_order` call is reported too. Prints JSON.

    ./dev run python benchmarks/node_tick_to_order.py [--seconds 20] [--every 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import platform
import sys
import tempfile
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kestrel.config.loading import load_config
from kestrel.core.enums import Market, Side
from kestrel.core.events import DepthSnapshot, DepthUpdate
from kestrel.core.identifiers import client_order_id
from kestrel.core.venue import BookView, ExecutionType, OrderUpdate
from kestrel.node import TradingNode, VenueKind
from kestrel.strategy.book_features import BookFeatures
from kestrel.strategy.engine import Exposure
from kestrel.strategy.pipeline import PipelineStrategy

ROOT = Path(__file__).resolve().parents[1]
KEY = "TickBenchKey0123456789"
SECRET = "TickBenchSecret0123456789abcdef"
SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def _serve(urls: Any, stop: Any) -> None:
    """The simulator's process: start, report its URLs, serve until told to stop."""
    from kestrel.sim import MarketSimulator, SimulatorOptions
    from kestrel.sim.trading.options import SimAccount, TradingOptions

    async def serve() -> None:
        options = SimulatorOptions(
            markets=(Market.FUTURES,), symbols=SYMBOLS, seed=5,
            trading=TradingOptions(accounts=[SimAccount(name="bench", api_key=KEY, api_secret=SECRET,
                                                        futures={"USDT": Decimal(1_000_000)})]),
        )  # fmt: skip
        async with MarketSimulator(options) as sim:
            urls.put({"rest_url": sim.rest_url, "ws_url": sim.ws_url, "futures_ws_url": sim.futures_ws_url})
            while not stop.is_set():
                await asyncio.sleep(0.1)

    asyncio.run(serve())


class TickProbe(PipelineStrategy):
    """The pipeline's decision path on every `every`-th book update, entries cancelled as the next
    one is made; remembers the feed time of the event behind each decision."""

    name = "tick_probe"

    def __init__(self, params: dict[str, Any], every: int) -> None:
        super().__init__(params)
        self.every = every
        self.current_ts_init = 0  # the market event being handled (stamped from the bus, before the node)
        self.samples: list[tuple[str, int, int, int, int]] = []  # intent, event ts_init, callback, send, returned
        self.updates = 0
        self.previous: str | None = None
        self.rejections: Counter[str] = Counter()

    def on_order_update(self, update: OrderUpdate) -> None:
        if update.execution_type is ExecutionType.REJECTED:
            self.rejections[(update.reason or "?")[:60]] += 1
        super().on_order_update(update)

    def stamp(self, event: object) -> None:
        if isinstance(event, DepthUpdate | DepthSnapshot):
            self.current_ts_init = event.ts_init

    def _on_symbol_book(self, key: tuple[Market, str], book: BookView) -> None:
        now = self.clock.timestamp_ns()
        features = self.features.get(key)
        if features is None:
            features = self.features[key] = BookFeatures(self.feature_settings)
        if not features.update(book, now) or not features.ready:
            return
        self.updates += 1
        if self.updates % self.every:
            return
        side = Side.BUY if self.updates // self.every % 2 else Side.SELL
        intent = self.decide(key, side, features, now)
        returned = self.clock.timestamp_ns()
        if intent is None:
            return
        execution = self.executor.executions[intent.intent_id]
        if execution.orders and execution.plan.start_delay_ms == 0:  # the first slice left at once
            self.samples.append((intent.intent_id, self.current_ts_init, now, self.executor.last_send_ns, returned))
        if self.previous is not None:
            self.executor.cancel(self.previous)
        self.previous = intent.intent_id

    def _exposure(self) -> Exposure:
        return Exposure()  # the probe measures latency: concurrency limits would only stop the samples


def _config(folder: Path, urls: dict[str, str], synchronous: str = "FULL") -> Path:
    # the shipped rules without their thin-book skip: the synthetic books are thin, and a skipped
    # decision sends no order to measure
    rules_document = yaml.safe_load((ROOT / "config/pipeline-rules.yaml").read_text())
    rules_document["rules"] = [r for r in rules_document["rules"] if "skip_entry" not in r["then"]]
    rules = folder / "rules.yaml"
    rules.write_text(yaml.safe_dump(rules_document))
    document = {
        "environment": "dev",
        "venue": {
            "spot": {"rest_url": urls["rest_url"], "ws_url": urls["ws_url"]},
            "futures": {"rest_url": urls["rest_url"], "ws_url": urls["futures_ws_url"]},
        },
        "data": {"ingest": {"markets": ["futures"], "symbols": SYMBOLS, "streams": ["depth@100ms"]}},
        "storage": {
            "data_dir": str(folder), "ledger_url": f"sqlite:///{folder / 'ledger.sqlite'}",
            "ledger_sqlite_synchronous": synchronous,
        },
        "strategy": {"rules_file": str(rules), "max_loss_usdt": 50},
        "feature": {"atr_period": 3},
        "risk": {
            "min_trade_interval_s": 0, "max_trades_per_24h": 1_000_000, "max_capital_in_use_pct": 100,
            "max_spread_bps": 100, "min_depth_top1_usdt": 0, "min_liquidity_score": 0,
            "futures_margin_budget_usdt": 1_000_000, "max_concurrent_entries_per_market": 1000,
        },
        "execution": {"cooldown_s": 0, "degrade_maker_fill_ratio": 0, "liquidity_probe_factor": 1000},
        "logging": {"level": "WARNING"},
    }  # fmt: skip
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _percentiles(values_ns: list[int]) -> dict[str, float]:
    if not values_ns:
        return {"count": 0}
    values = np.asarray(values_ns) / 1e6
    return {
        "count": len(values_ns),
        "p50_ms": round(float(np.percentile(values, 50)), 4),
        "p99_ms": round(float(np.percentile(values, 99)), 4),
        "max_ms": round(float(values.max()), 4),
    }


async def _run_node(config_path: Path, seconds: float, every: int) -> dict[str, Any]:
    import os

    os.environ["KESTREL__VENUE__API_KEY"] = KEY
    os.environ["KESTREL__VENUE__API_SECRET"] = SECRET
    config = load_config(config_path, env_file=None)
    probe = TickProbe(
        {"config": str(config_path), "bar_ms": "500", "model": "logistic", "model_intercept": "1.0"}, every
    )
    node = TradingNode(config, probe, mode="paper", venue_kind=VenueKind.BINANCE)
    node.bus.subscribe("data.*", probe.stamp, priority=10)  # before the node's own handler
    summary = await node.run(duration_s=seconds)
    assert node.binance is not None
    sent: dict[str, int] = {}
    for ts, request in node.binance.rest[Market.FUTURES].http.sent:
        cid = request.url.query.get("newClientOrderId")
        if cid is not None and request.method == "POST":
            sent.setdefault(cid, ts)
    tick_to_socket: list[int] = []
    tick_to_submit: list[int] = []
    submit_to_socket: list[int] = []
    tick_to_callback: list[int] = []
    submit_call: list[int] = []
    for intent_id, ts_event, ts_callback, ts_submit, ts_returned in probe.samples:
        for leg in ("m0", "t0"):
            ts_socket = sent.get(client_order_id(intent_id, leg, 0))
            if ts_socket is not None and ts_event > 0:
                tick_to_socket.append(ts_socket - ts_event)
                tick_to_submit.append(ts_submit - ts_event)
                tick_to_callback.append(ts_callback - ts_event)
                submit_call.append(ts_returned - ts_submit)
                submit_to_socket.append(ts_socket - ts_submit)
                break
    return {
        "decisions": probe.decisions,
        "skips": dict(probe.skip_reasons),
        "rejections": dict(probe.rejections),
        "entries": len(probe.intents),
        "samples_matched": len(tick_to_socket),
        "tick_to_order": _percentiles(tick_to_socket),
        "tick_to_strategy_callback": _percentiles(tick_to_callback),
        "tick_to_submit_call": _percentiles(tick_to_submit),
        "submit_call_to_socket": _percentiles(submit_to_socket),
        "of_which_guard_and_venue_calls_until_the_decision_returns": _percentiles(submit_call),
        "node": {"market_events": summary.market_events, "orders": summary.orders, "fills": summary.fills,
                 "rejections": summary.rejections, "strategy_errors": summary.strategy_errors},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--every", type=int, default=2, help="Decide on every N-th book update")
    parser.add_argument(
        "--ledger-dir", type=Path, default=None,
        help="Where the node's SQLite ledger lives (default: a temporary folder; /dev/shm leaves out the disk's fsync)",
    )  # fmt: skip
    parser.add_argument(
        "--sqlite-synchronous", choices=["FULL", "NORMAL"], default="FULL",
        help="storage.ledger_sqlite_synchronous of the node's ledger",
    )  # fmt: skip
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    urls_queue = context.Queue()
    stop = context.Event()
    server = context.Process(target=_serve, args=(urls_queue, stop), daemon=True)
    server.start()
    try:
        urls = urls_queue.get(timeout=60)
        with tempfile.TemporaryDirectory(dir=args.ledger_dir) as folder:
            result = asyncio.run(
                _run_node(_config(Path(folder), urls, args.sqlite_synchronous), args.seconds, args.every)
            )
    finally:
        stop.set()
        server.join(timeout=10)
        if server.is_alive():
            server.terminate()
    target_ms = 1.0
    p99 = result["tick_to_order"].get("p99_ms")
    print(
        json.dumps(
            {
                "benchmark": "node_tick_to_order",
                "mode": "paper, VenueKind.BINANCE, simulator in a child process over loopback",
                "seconds": args.seconds,
                "decide_every_nth_book_update": args.every,
                "ledger_dir": str(args.ledger_dir or tempfile.gettempdir()),
                "ledger_sqlite_synchronous": args.sqlite_synchronous,
                **result,
                "target_p99_ms": target_ms,
                "meets_target": p99 is not None and p99 <= target_ms,
                "python": platform.python_version(),
                "machine": platform.machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
