"""A backtest and a paper run of the same strategy on the same recording, the paper run through the
simulator over real sockets in lockstep (kestrel.sim.lockstep), send the same orders and get the same
fills; with another order latency, `kestrel compare` lists the differences."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest

from kestrel.backtest.compare import compare_runs
from kestrel.backtest.driver import run_backtest
from kestrel.backtest.lockstep import lockstep_plan
from kestrel.backtest.runs import write_run
from kestrel.backtest.setup import BacktestRequest, prepare
from kestrel.cli import main
from kestrel.config.loading import load_config
from kestrel.config.models import KestrelConfig
from kestrel.core.enums import Market, OrderType, Side, TimeInForce
from kestrel.core.identifiers import ClientOrderId
from kestrel.core.venue import BookView, OrderRequest, OrderUpdate
from kestrel.node import TradingNode, VenueKind
from kestrel.node.pacing import LockstepClock, LockstepPacer
from kestrel.sim import MarketSimulator, SimulatorOptions
from kestrel.sim.lockstep import CONTROL_PATH
from kestrel.sim.trading.options import SimAccount, TradingOptions
from kestrel.strategy.base import Strategy
from kestrel.strategy.loading import load_strategy


@dataclass(frozen=True)
class Slice:
    """A window of one shared USD-M recording from its first receive time (SOURCES.md)."""

    recording: str
    first_ms: int
    seconds: int


QUIET = Slice("hftbacktest/usdm/btcusdt_20240718.gz", 1721347020984, 60)  # 3,648 frames, 27,537 table rows
BUSY = Slice("hftbacktest/usdm/btcusdt_20240808.gz", 1723161255030, 20)  # 4,391 frames, 22,922 table rows
KEY = "LockstepKey0123456789"
SECRET = "LockstepSecret0123456789abcdef"
ACCOUNT = "node"
PARAMS = {"symbol": "BTCUSDT", "interval_ms": "100", "quantity": "0.002", "max_position": "0.01"}


def config_for(tmp_path: Path, entry_ms: float, overrides: dict[str, Any] | None = None) -> KestrelConfig:
    values: dict[str, Any] = {
        "environment": "dev",
        "seed": 11,
        "matching": {
            "feed_latency": {"model": "constant", "constant_ms": 5.0},
            "order_entry_latency": {"model": "constant", "constant_ms": entry_ms},
            "order_response_latency": {"model": "constant", "constant_ms": 7.0},
        },
        "risk": {"min_trade_interval_s": 0.0, "max_trades_per_24h": 100_000, "max_consecutive_losses": 1000},
        "storage": {"ledger_url": f"sqlite:///{tmp_path / 'ledger.sqlite'}", "data_dir": str(tmp_path)},
        "data": {"ingest": {"markets": ["futures"], "symbols": ["BTCUSDT"], "streams": ["depth@100ms"]}},
    }
    for section, value in (overrides or {}).items():
        values[section] = {**values.get(section, {}), **value}
    return load_config(None, overrides=values, env_file=None)


MAKER = ("market_maker", PARAMS)
CHASER = ("tests.node.test_backtest_vs_paper:BookChaser", {})
Spec = tuple[str, dict[str, str]]


def request_for(shared_data: Path, config: KestrelConfig, data: Slice, strategy: Spec = MAKER) -> BacktestRequest:
    end_ns = (data.first_ms + data.seconds * 1000) * 1_000_000
    name, params = strategy
    return BacktestRequest(name, [shared_data / data.recording], config, ["BTCUSDT"], params, end_ns=end_ns)


def backtest_run(
    shared_data: Path,
    tmp_path: Path,
    data: Slice,
    entry_ms: float,
    matching: dict[str, Any] | None = None,
    strategy: Spec = MAKER,
) -> Path:
    config = config_for(tmp_path, entry_ms, {"matching": matching or {}})
    prepared = prepare(request_for(shared_data, config, data, strategy))
    result = run_backtest(prepared.setup)
    run_dir = tmp_path / f"backtest-{entry_ms:g}"
    write_run(run_dir, result, prepared.params, prepared.data_files)
    return run_dir


async def paper_run(
    shared_data: Path,
    tmp_path: Path,
    data: Slice,
    entry_ms: float,
    matching: dict[str, Any] | None = None,
    strategy: Spec = MAKER,
) -> tuple[Path, dict[str, Any]]:
    """The same request as the backtest, traded by a paper node over the simulator's sockets."""
    plan_config = config_for(tmp_path, entry_ms, {"matching": matching or {}})
    plan = lockstep_plan(request_for(shared_data, plan_config, data, strategy), ACCOUNT)
    options = SimulatorOptions(
        source="replay", replay_files=[shared_data / data.recording], markets=(Market.FUTURES,), data_dir=shared_data,
        seed=11, trading=TradingOptions(accounts=[SimAccount(name=ACCOUNT, api_key=KEY, api_secret=SECRET)]),
    )  # fmt: skip
    async with MarketSimulator(options, lockstep=plan) as sim:
        venue = {
            "spot": {"rest_url": sim.rest_url, "ws_url": sim.ws_url},
            "futures": {"rest_url": sim.rest_url, "ws_url": sim.futures_ws_url},
            "api_key": KEY, "api_secret": SECRET,
        }  # fmt: skip
        config = config_for(tmp_path / "paper", entry_ms, {"venue": venue, "matching": matching or {}})
        clock = LockstepClock(plan.start_ns)
        pacer = LockstepPacer(sim.rest_url.replace("http://", "ws://") + CONTROL_PATH, clock)
        node = TradingNode(
            config, load_strategy(*strategy), mode="paper", venue_kind=VenueKind.BINANCE, clock=clock, pacer=pacer
        )
        await node.run()
        stats = sim.stats()
    assert pacer.error is None, pacer.error
    assert node.run_dir is not None
    return node.run_dir, {"lockstep": stats["lockstep"], "pacer_steps": pacer.steps, "summary": node.summary}


def rows(run_dir: Path, name: str) -> list[dict[str, str]]:
    with (run_dir / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


# seeded random order latencies: the same draws in both runs, since lockstep hands commands to
# SimVenue in the node's send order
RANDOM = {
    "order_entry_latency": {"model": "lognormal", "median_ms": 10.0, "sigma": 0.8},
    "order_response_latency": {"model": "normal", "mean_ms": 8.0, "std_ms": 4.0},
}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("data", "matching", "strategy", "least_orders", "least_fills"),
    [
        (QUIET, {}, MAKER, 8, 3),
        (BUSY, {}, MAKER, 30, 10),
        (BUSY, RANDOM, MAKER, 30, 10),
        (BUSY, {}, CHASER, 15, 5),
    ],
    ids=["quiet", "busy", "busy-random-latency", "busy-book-driven"],
)
async def test_backtest_and_lockstep_paper_run_send_the_same_orders_and_get_the_same_fills(
    shared_data: Path,
    tmp_path: Path,
    data: Slice,
    matching: dict[str, Any],
    strategy: Spec,
    least_orders: int,
    least_fills: int,
) -> None:
    backtest = backtest_run(shared_data, tmp_path, data, 10.0, matching, strategy)
    paper, info = await paper_run(shared_data, tmp_path, data, 10.0, matching, strategy)
    assert info["lockstep"]["missing_commands"] == 0
    differences, counts = compare_runs(backtest, paper)
    assert differences == [], "\n".join(str(d) for d in differences[:20])
    assert counts["orders"] >= least_orders and counts["fills"] >= least_fills, counts
    # beyond what compare checks: the client order id sequence maps one to one, in submission order
    backtest_orders, paper_orders = rows(backtest, "orders.csv"), rows(paper, "orders.csv")
    assert len({o["client_order_id"] for o in paper_orders}) == len(paper_orders) == len(backtest_orders)
    fills_a, fills_b = rows(backtest, "fills.csv"), rows(paper, "fills.csv")

    def fill_key(fill: dict[str, str]) -> tuple[str, Decimal, Decimal, Decimal, str]:
        return fill["side"], Decimal(fill["price"]), Decimal(fill["quantity"]), Decimal(fill["fee"]), fill["ts_event"]

    assert [fill_key(f) for f in fills_a] == [fill_key(f) for f in fills_b]  # even the exchange times


@pytest.mark.slow
async def test_another_order_latency_makes_compare_list_the_differences(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backtest = backtest_run(shared_data, tmp_path, QUIET, entry_ms=10.0)
    paper, _ = await paper_run(shared_data, tmp_path, QUIET, entry_ms=250.0)  # the paper orders arrive later
    differences, _ = compare_runs(backtest, paper)
    listed = [str(d) for d in differences]
    assert any(d.kind == "orders" and d.field in ("count", "price", "status") for d in differences), listed
    capsys.readouterr()
    assert main(["compare", str(backtest), str(paper), "--limit", "1000"]) == 1
    printed = capsys.readouterr().out.splitlines()
    assert printed[:-1] == listed and printed[-1] == f"{len(listed)} difference(s)"


class BookChaser(Strategy):
    """Reacts to the book, not to a timer: one post-only order at the touch (a bid when flat or short,
    an ask when long), cancelled as soon as the touch leaves its price."""

    name = "book_chaser"
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        super().__init__(params)
        self.working: tuple[ClientOrderId, Decimal] | None = None
        self.cancelling = False
        self.position = Decimal(0)

    def on_book(self, book: BookView) -> None:
        bid, ask = book.best_bid_price, book.best_ask_price
        if bid is None or ask is None:
            return
        if self.working is None:
            side = Side.BUY if self.position <= 0 else Side.SELL
            price = Decimal(str(bid if side is Side.BUY else ask))
            request = OrderRequest(Market.FUTURES, book.symbol, side, OrderType.LIMIT, quantity=Decimal("0.002"),
                                   price=price, time_in_force=TimeInForce.GTX)  # fmt: skip
            self.working = (self.submit_order(request), price)
        elif not self.cancelling and self.working[1] not in (Decimal(str(bid)), Decimal(str(ask))):
            self.cancelling = True
            self.cancel_order(Market.FUTURES, book.symbol, self.working[0])

    def on_order_update(self, update: OrderUpdate) -> None:
        if update.fill is not None:
            self.position += update.fill.quantity * update.fill.side.sign
        order = update.order
        if self.working is not None and order.client_order_id == self.working[0] and order.status.is_terminal:
            self.working = None
            self.cancelling = False
