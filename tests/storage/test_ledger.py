"""The ledger on SQLite and on the real PostgreSQL server: same schema, same behaviour."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from kestrel.core.enums import Decision, LiquiditySide, Market, OrderStatus, OrderType, Side, TimeInForce
from kestrel.core.errors import ConfigurationError
from kestrel.core.identifiers import IntentId, SignalId, StrategyId, TradeId, VenueOrderId, client_order_id
from kestrel.core.orders import Fill, Intent, Order, Position, Signal
from kestrel.storage.ledger import Ledger, LedgerError


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    if request.param == "sqlite":
        store = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
        store.migrate()
        yield store
        store.close()
        return
    base_url: str = request.getfixturevalue("postgres_url")
    import psycopg

    name = f"kestrel_ledger_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    store = Ledger(base_url.rsplit("/", 1)[0] + f"/{name}")
    store.migrate()
    try:
        yield store
    finally:
        store.close()
        with psycopg.connect(base_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_intent(intent_id: str = "intent-1") -> Intent:
    return Intent(
        IntentId(intent_id), StrategyId("sma"), Market.FUTURES, "BTCUSDT", Side.BUY, Decimal("0.002"), 1_000,
        OrderType.LIMIT, Decimal("67000.1"), Decimal("68000"), Decimal("66000"), config_rev="abc123",
    )  # fmt: skip


def make_order(intent_id: str = "intent-1", leg: str = "e") -> Order:
    return Order(
        client_order_id(intent_id, leg), IntentId(intent_id), Market.FUTURES, "BTCUSDT", Side.BUY, OrderType.LIMIT,
        Decimal("0.002"), 2_000, price=Decimal("67000.1"), time_in_force=TimeInForce.GTC,
    )  # fmt: skip


def test_migrations_are_idempotent_and_match_the_schema(ledger: Ledger) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from kestrel.storage.ledger.schema import metadata

    assert ledger.migrate() == "0001"
    assert ledger.schema_revision() == "0001"
    with ledger._engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == [], "schema.py and the migrations disagree: add a migration"


def test_order_life_cycle_round_trip(ledger: Ledger) -> None:
    assert ledger.record_intent(make_intent())
    assert not ledger.record_intent(make_intent())  # a replayed decision is not recorded twice
    order = make_order()
    order.apply_status(OrderStatus.SUBMITTED, 2_100)
    assert ledger.record_order(order)
    assert not ledger.record_order(order)  # same client id: refused, like the exchange does
    assert [o.client_order_id for o in ledger.unfinished_orders()] == [order.client_order_id]
    order.apply_status(OrderStatus.UNKNOWN, 2_200)  # 5xx: outcome unknown, still unfinished
    ledger.update_order(order, reason="HTTP 503")
    assert ledger.unfinished_orders()[0].status is OrderStatus.UNKNOWN
    order.apply_status(OrderStatus.NEW, 2_300)
    order.venue_order_id = VenueOrderId(99)
    ledger.update_order(order)
    fill = Fill(
        order.client_order_id, VenueOrderId(99), TradeId(5), Market.FUTURES, "BTCUSDT", Side.BUY,
        Decimal("67000.1"), Decimal("0.002"), Decimal("0.0536000800000000001"), "USDT", LiquiditySide.MAKER,
        2_400, 2_401,
    )  # fmt: skip
    assert ledger.record_fill(fill)
    assert not ledger.record_fill(fill)  # user stream and REST poll report it twice: stored once
    order.apply_fill(fill)
    ledger.update_order(order)
    assert ledger.unfinished_orders() == []
    stored = ledger.get_order(order.client_order_id)
    assert stored is not None
    assert stored.status is OrderStatus.FILLED and stored.filled_quantity == Decimal("0.002")
    assert stored.venue_order_id == 99 and stored.price == Decimal("67000.1")
    assert ledger.fills(order.client_order_id) == [fill]  # exact decimals, every field
    assert [status for status, _ in ledger.order_history(order.client_order_id)] == [
        "SUBMITTED", "UNKNOWN", "NEW", "FILLED",
    ]  # fmt: skip
    assert ledger.get_intent("intent-1") == make_intent()


def test_intent_states_and_positions(ledger: Ledger) -> None:
    ledger.record_intent(make_intent("a"))
    ledger.record_intent(make_intent("b"))
    ledger.set_intent_state("a", "ACTIVE", 5)
    assert ledger.intent_states() == {"a": "ACTIVE", "b": "PENDING_ENTRY"}
    assert ledger.intent_states("ACTIVE") == {"a": "ACTIVE"}
    with pytest.raises(ValueError, match="intent state"):
        ledger.set_intent_state("a", "DONE", 6)
    with pytest.raises(LedgerError, match="no intent"):
        ledger.set_intent_state("zzz", "CLOSED", 6)
    position = Position(Market.FUTURES, "BTCUSDT")
    position.apply_fill(Side.BUY, Decimal("100"), Decimal("3"), Decimal("0.03"), 10)
    ledger.save_position(position)
    position.apply_fill(Side.SELL, Decimal("110"), Decimal("1"), Decimal("0.01"), 11)
    ledger.save_position(position)
    assert ledger.positions() == [position]


def test_signals_config_transfers_audit(ledger: Ledger) -> None:
    signal_ = Signal(
        SignalId("s1"), StrategyId("sma"), Market.SPOT, "ETHUSDT", Decision.SKIP, 1, 2, 3,
        p_up=0.42, reasons=("spread_bps > 10",), config_rev="r1",
    )  # fmt: skip
    assert ledger.record_signal(signal_)
    assert not ledger.record_signal(signal_)
    assert ledger.signal_decisions() == {"s1": Decision.SKIP}
    assert ledger.record_config_revision("r1", {"risk": {"leverage": 5}}, 1)
    assert not ledger.record_config_revision("r1", {"risk": {"leverage": 5}}, 2)
    ledger.record_transfer("t1", "USDT", Decimal("25.5"), "SPOT", "FUTURES", "PENDING", 1)
    ledger.record_transfer("t1", "USDT", Decimal("25.5"), "SPOT", "FUTURES", "DONE", 2)
    ledger.audit("reconcile.fix", {"order": "x", "action": "cancel"}, 9, subject="BTCUSDT")
    assert ledger.audit_events("reconcile.fix") == [
        {"kind": "reconcile.fix", "subject": "BTCUSDT", "detail": {"action": "cancel", "order": "x"}, "ts": 9}
    ]


def test_bad_url() -> None:
    with pytest.raises(ConfigurationError, match="sqlite"):
        Ledger("mysql://x")


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
def test_sqlite_durability_setting_reaches_every_connection(tmp_path: Path, synchronous: str) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.sqlite'}", synchronous)
    ledger.migrate()
    with ledger._engine.connect() as connection:  # the PRAGMA each connection got is the point
        level = connection.exec_driver_sql("PRAGMA synchronous").scalar()
        mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
    assert (level, mode) == ({"FULL": 2, "NORMAL": 1}[synchronous], "wal")
    ledger.close()
    with pytest.raises(ConfigurationError, match="synchronous"):
        Ledger(f"sqlite:///{tmp_path / 'm.sqlite'}", "OFF")


CHILD = """
import sys
import time
from decimal import Decimal
from kestrel.core.enums import Market, OrderType, Side
from kestrel.core.identifiers import IntentId, client_order_id
from kestrel.core.orders import Order
from kestrel.storage.ledger import Ledger
ledger = Ledger(sys.argv[1]); ledger.migrate()
for n in range(100000):
    order = Order(client_order_id(f"i{n}"), IntentId(f"i{n}"), Market.SPOT, "BTCUSDT", Side.BUY, OrderType.MARKET,
                  Decimal("0.001"), n)
    ledger.record_order(order)
    print(order.client_order_id, flush=True)
"""


def test_committed_writes_survive_kill_9(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crash.sqlite'}"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, url], stdout=subprocess.PIPE, text=True, env={**os.environ},
    )  # fmt: skip
    assert child.stdout is not None
    acknowledged = [child.stdout.readline().strip() for _ in range(200)]
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    ledger = Ledger(url)
    stored = {order.client_order_id for order in ledger.orders()}
    assert set(acknowledged) <= stored  # everything the writer was told is committed survived
    assert len(stored) >= 200


def test_fill_deficits_list_orders_missing_fills(ledger: Ledger) -> None:
    order = make_order()
    order.apply_status(OrderStatus.SUBMITTED, 2_100)
    ledger.record_order(order)
    order.apply_status(OrderStatus.NEW, 2_200)
    order.venue_order_id = VenueOrderId(7)
    fills = [
        Fill(order.client_order_id, VenueOrderId(7), TradeId(n), Market.FUTURES, "BTCUSDT", Side.BUY,
             Decimal("67000.1"), Decimal("0.001"), Decimal("0.01"), "USDT", LiquiditySide.MAKER, 2_300 + n, 2_300 + n)
        for n in (1, 2)
    ]  # fmt: skip
    for fill in fills:
        order.apply_fill(fill)
    ledger.update_order(order)  # the order says FILLED 0.002 ...
    assert ledger.record_fill(fills[0])  # ... and only one of its two fills was written before the crash
    assert [(o.client_order_id, have) for o, have in ledger.fill_deficits()] == [
        (order.client_order_id, Decimal("0.001"))
    ]
    assert ledger.fill_deficits(since_ns=order.ts_last + 1) == []  # older than asked: not listed
    assert ledger.record_fill(fills[1])
    assert ledger.fill_deficits() == []
    assert ledger.fill_positions() == {(Market.FUTURES, "BTCUSDT"): Decimal("0.002")}  # what the fills add up to


HOOKED_CHILD = """
import sys
import time
from decimal import Decimal
from kestrel.core.enums import Market, OrderStatus, OrderType, Side
from kestrel.core.identifiers import IntentId, client_order_id
from kestrel.core.orders import Order
from kestrel.storage.ledger import Ledger
ledger = Ledger(sys.argv[1]); ledger.migrate()
for n in range(5):
    order = Order(client_order_id(f"h{n}"), IntentId(f"h{n}"), Market.SPOT, "BTCUSDT", Side.BUY, OrderType.MARKET,
                  Decimal("0.001"), n)
    order.apply_status(OrderStatus.SUBMITTED, n)
    ledger.record_order(order)
print("done", flush=True)
"""


def test_crash_hook_stalls_at_the_chosen_write_and_is_inert_otherwise(tmp_path: Path) -> None:
    from kestrel.storage.ledger.crash_hook import ENVIRONMENT_VARIABLE

    environment = {key: value for key, value in os.environ.items() if key != ENVIRONMENT_VARIABLE}
    inert = subprocess.run(
        [sys.executable, "-c", HOOKED_CHILD, f"sqlite:///{tmp_path / 'inert.sqlite'}"], env=environment,
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert inert.stdout.strip() == "done"
    marker = tmp_path / "marker"
    url = f"sqlite:///{tmp_path / 'hooked.sqlite'}"
    child = subprocess.Popen(
        [sys.executable, "-c", HOOKED_CHILD, url],
        env={**environment, ENVIRONMENT_VARIABLE: f"after_submit:3:{marker}"}, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for _ in range(600):
            if marker.exists() or child.poll() is not None:
                break
            time.sleep(0.05)
        assert marker.exists() and child.poll() is None  # stalled, alive, at the third SUBMITTED write
        assert marker.read_text().startswith("after_submit ")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    ledger = Ledger(url)
    assert [o.client_order_id for o in ledger.orders()] == [client_order_id(f"h{n}") for n in range(3)]
    ledger.close()
