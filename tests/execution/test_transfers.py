"""Wallet transfers spot ↔ futures (R-EX-6): caps, the ledger trail, the engine and the real simulator."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from kestrel.binance.transfers import BinanceWalletTransfers
from kestrel.config.models import ExecutionConfig
from kestrel.core.clock import SimClock
from kestrel.core.enums import Market, Side
from kestrel.core.transfers import TransferDirection, TransferStatus
from kestrel.core.venue import AccountUpdate, AccountUpdateReason, VenueEvent
from kestrel.execution.transfers import EngineTransfers, TransferManager, plan_transfer
from kestrel.matching.venue import SimVenue
from kestrel.sim.trading.options import SimAccount
from kestrel.storage.ledger import Ledger
from tests.binance.venue_sim_helpers import KEY, SECRET, running_venue, trading_sim, wait_until
from tests.matching.helpers import FUT, engine, market_order, snapshot

D = Decimal
CAPS = ExecutionConfig(transfer_max_usdt=1_000, transfer_min_reserve_usdt=50, transfer_daily_max_usdt=1_500)


@pytest.mark.parametrize(
    ("shortfall", "source_free", "moved_today", "amount", "bound"),
    [
        ("120.456", "10000", "0", "120.45", "the shortfall"),  # cut down to the cent, never up
        ("5000", "10000", "0", "1000", "the per-transfer cap"),
        ("500", "300", "0", "250", "the source reserve"),
        ("800", "10000", "1200", "300", "the daily cap"),
        ("800", "40", "0", "0", "the source reserve"),  # never below the reserve, never negative
    ],
)
def test_the_tightest_cap_bounds_a_transfer(
    shortfall: str, source_free: str, moved_today: str, amount: str, bound: str
) -> None:
    plan = plan_transfer(D(shortfall), D(source_free), D(moved_today), CAPS)
    assert plan.amount == D(amount) and plan.reason == f"bound by {bound}"


def _paper(tmp_path: Path, spot_usdt: str = "2000", futures_usdt: str = "100"):  # type: ignore[no-untyped-def]
    matching = engine(spot_usdt=D(spot_usdt), futures_usdt=D(futures_usdt))
    matching.apply(snapshot(FUT))
    clock = SimClock(1_000)
    venue = SimVenue(matching, "a", clock)
    events: list[VenueEvent] = []
    venue.set_event_handler(events.append)
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    ledger.migrate()

    def free(market: Market, asset: str) -> Decimal:
        account = matching.account("a")
        return account.spot.free(asset) if market is Market.SPOT else account.futures.max_withdraw(asset)

    manager = TransferManager(EngineTransfers(venue), clock, CAPS, free, ledger)
    return matching, venue, events, ledger, manager, clock


def _deliver(venue: SimVenue, clock: SimClock) -> None:
    while (due := venue.next_due_ns()) is not None:
        clock.advance_to(due)
        venue.process_due(due)


async def test_a_top_up_moves_money_within_caps_and_leaves_a_trail(tmp_path: Path) -> None:
    matching, venue, events, ledger, manager, clock = _paper(tmp_path)
    result = await manager.top_up(Market.FUTURES, "USDT", D(1_400))
    assert result is not None and result.status is TransferStatus.CONFIRMED and result.amount == D(1_000)
    _deliver(venue, clock)  # the balance updates come through the venue like any engine event
    account = matching.account("a")
    assert account.spot.free("USDT") == D(1_000) and account.futures.wallet("USDT") == D(1_100)
    reasons = {(e.market, e.reason) for e in events if isinstance(e, AccountUpdate)}
    assert reasons == {(Market.SPOT, AccountUpdateReason.WITHDRAW), (Market.FUTURES, AccountUpdateReason.DEPOSIT)}
    rows = ledger.transfers()
    assert [(r["status"], r["amount"], r["source"], r["target"]) for r in rows] == [
        ("CONFIRMED", D(1_000), "spot", "futures")
    ]
    audit = ledger.audit_events("transfer")[0]["detail"]
    assert audit["plan"] == "bound by the per-transfer cap" and audit["status"] == "CONFIRMED"
    # the daily cap (1 500) leaves 500; the spot reserve (50) is kept whatever is asked
    second = await manager.top_up(Market.FUTURES, "USDT", D(900))
    assert second is not None and second.amount == D(500)
    assert await manager.top_up(Market.FUTURES, "USDT", D(10)) is None
    assert ledger.audit_events("transfer.refused")[-1]["detail"]["plan"] == "bound by the daily cap"
    assert manager.moved_today() == D(1_500)


async def test_open_profit_cannot_leave_the_futures_wallet(tmp_path: Path) -> None:
    matching, venue, _, _, manager, clock = _paper(tmp_path, spot_usdt="0", futures_usdt="1000")
    venue.submit_order(market_order(Side.BUY, "2"))  # 2 × ~100 = 200 notional at 20× leverage: small margin
    _deliver(venue, clock)
    futures = matching.account("a").futures
    withdrawable = futures.max_withdraw("USDT")
    assert D(0) < withdrawable < futures.wallet("USDT")  # the position's margin stays
    result = await manager.top_up(Market.SPOT, "USDT", D(5_000))
    assert result is not None and result.status is TransferStatus.CONFIRMED
    assert result.amount == min(D(1_000), (withdrawable - D(50)).quantize(D("0.01"), rounding="ROUND_DOWN"))
    with pytest.raises(Exception, match="insufficient balance"):
        matching.transfer("a", TransferDirection.FUTURES_TO_SPOT, "USDT", futures.max_withdraw("USDT") + 1, 2_000)


async def test_transfers_refuse_other_assets_and_a_failed_one_is_recorded(tmp_path: Path) -> None:
    _, _, _, ledger, manager, _ = _paper(tmp_path, spot_usdt="500")
    assert await manager.top_up(Market.FUTURES, "BTC", D(1)) is None
    assert ledger.audit_events("transfer.refused")[0]["detail"]["reason"] == "only USDT has caps"
    # a stale view of the source (here: a lie) lets a plan through; the engine refuses what the spot
    # wallet does not have, and the refusal is a FAILED row, not an exception
    failing = TransferManager(manager.transport, manager.clock, CAPS, lambda *_: D(10**6), ledger, "fail")
    result = await failing.top_up(Market.FUTURES, "USDT", D(900))
    assert result is not None and result.status is TransferStatus.FAILED and "-5013" in (result.reason or "")
    assert [r["status"] for r in ledger.transfers("FAILED")] == ["FAILED"]


FUNDED = [SimAccount(name="alice", api_key=KEY, api_secret=SECRET, spot={"USDT": 3000}, futures={"USDT": 500})]


async def test_transfers_through_the_simulator_with_unknown_outcomes(shared_data: Path) -> None:
    async with (
        trading_sim(shared_data, markets=(Market.FUTURES, Market.SPOT), trading={"accounts": FUNDED}) as sim,
        running_venue(sim) as venue,
    ):
        desk = sim.trading
        assert desk is not None
        wallet = BinanceWalletTransfers(venue.http[Market.SPOT], venue.clock)

        def usdt(market: Market) -> Decimal:
            return next(b.wallet for b in venue.balances(market) if b.asset == "USDT")

        done = await wallet.transfer(TransferDirection.SPOT_TO_FUTURES, "USDT", D("250.5"))
        assert done.status is TransferStatus.CONFIRMED and done.exchange_id is not None
        # the user data streams tell the venue's local view, on both wallets
        await wait_until(lambda: usdt(Market.FUTURES) == D("750.5") and usdt(Market.SPOT) == D("2749.5"))

        desk.fail_next_transfers(placed=True)  # moved, but the answer is a 500
        placed = await wallet.transfer(TransferDirection.FUTURES_TO_SPOT, "USDT", D(100))
        assert placed.status is TransferStatus.CONFIRMED and wallet.resolved_by_history == 1
        desk.fail_next_transfers(placed=False)  # a 503 before anything moved
        unplaced = await wallet.transfer(TransferDirection.FUTURES_TO_SPOT, "USDT", D(100))
        assert unplaced.status is TransferStatus.FAILED and unplaced.reason == "not in the exchange's history"
        assert placed.exchange_id != done.exchange_id
        # never resubmitted: the exchange holds exactly the two transfers that happened
        assert desk.counters.transfers == 2 and [r.amount for r in desk.transfers] == [D("250.5"), D(100)]
        engine_account = desk.engine.account("alice")
        assert engine_account.futures.wallet("USDT") == D("650.5") and engine_account.spot.free("USDT") == D("2849.5")

        refused = await wallet.transfer(TransferDirection.FUTURES_TO_SPOT, "USDT", D(10_000))
        assert refused.status is TransferStatus.FAILED and (refused.reason or "").startswith("-5013")
        bad = await wallet.transfer(TransferDirection.SPOT_TO_FUTURES, "USDT", D(-1))
        assert bad.status is TransferStatus.FAILED
