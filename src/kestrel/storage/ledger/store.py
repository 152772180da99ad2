"""The ledger store: every state change is committed before the caller acts on it.

The node writes an intent before it sends an order, the order (status SUBMITTED) before the request
leaves, and each acknowledgement, fill and position change as it arrives; a restart rebuilds the node's
state from here and the reconciler settles whatever the exchange did meanwhile.

SQLite runs in WAL mode with `synchronous=FULL`, so a committed write survives kill -9 and power loss.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping, make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from kestrel.core.enums import (
    Decision,
    LiquiditySide,
    Market,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from kestrel.core.errors import ConfigurationError, TemporaryError
from kestrel.core.identifiers import ClientOrderId, IntentId, StrategyId, TradeId, VenueOrderId
from kestrel.core.orders import Fill, Intent, Order, Position, Signal
from kestrel.storage.ledger import crash_hook, schema

MIGRATIONS = Path(__file__).with_name("migrations")
INTENT_STATES = ("PENDING_ENTRY", "ACTIVE", "PENDING_CLOSING", "CLOSED")


class LedgerError(TemporaryError):
    """The ledger could not be read or written (the database is unreachable or refused the write)."""


def _engine_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername == "postgresql":  # pick psycopg 3, the driver we ship
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return parsed.render_as_string(hide_password=False)


# WAL + FULL: every commit is on disk when it returns (survives a power cut). WAL + NORMAL: a commit
# survives the process being killed (kill -9, a crash) but the last ones may roll back on a power cut or
# an OS crash; it saves the fsync of each commit (~2 ms on a disk). After such a loss the start-up
# reconciliation finds the orders sent meanwhile on the exchange and adopts them (our client-id prefix).
SQLITE_SYNCHRONOUS = ("FULL", "NORMAL")


def _enable_sqlite_durability(engine: Engine, synchronous: str) -> None:
    if synchronous not in SQLITE_SYNCHRONOUS:
        raise ConfigurationError(
            f"SQLite synchronous must be one of {', '.join(SQLITE_SYNCHRONOUS)}, got {synchronous}"
        )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


class Ledger:
    """Orders, fills, positions, intents, signals, config revisions, transfers and audit events."""

    def __init__(self, url: str, sqlite_synchronous: str = "FULL") -> None:
        if not url.startswith(("sqlite", "postgresql")):
            raise ConfigurationError(f"ledger URL must be sqlite:// or postgresql://, got {url.split(':')[0]}")
        self.url = url
        self._engine = create_engine(_engine_url(url), future=True, pool_pre_ping=True)
        if self._engine.dialect.name == "sqlite":
            _enable_sqlite_durability(self._engine, sqlite_synchronous)

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def close(self) -> None:
        self._engine.dispose()

    # ---- schema ------------------------------------------------------------------------------------
    def migrate(self) -> str:
        """Bring the schema to the newest revision; returns it."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self._write() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        return self.schema_revision() or ""

    def schema_revision(self) -> str | None:
        from alembic.migration import MigrationContext

        with self._engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    # ---- plumbing ----------------------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[Connection]:
        try:
            with self._engine.begin() as connection:
                yield connection
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            raise LedgerError(f"ledger write failed: {exc.__class__.__name__}: {exc}") from exc

    def _read(self, statement: Any) -> list[RowMapping]:
        try:
            with self._engine.connect() as connection:
                return [row._mapping for row in connection.execute(statement)]
        except SQLAlchemyError as exc:
            raise LedgerError(f"ledger read failed: {exc.__class__.__name__}: {exc}") from exc

    def _upsert(self, connection: Connection, table: Table, values: dict[str, Any], keys: Sequence[str]) -> None:
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        statement = dialect.insert(table).values(**values)
        changes = {name: value for name, value in values.items() if name not in keys}
        connection.execute(statement.on_conflict_do_update(index_elements=list(keys), set_=changes))

    # ---- intents -----------------------------------------------------------------------------------
    def record_intent(self, intent: Intent, state: str = "PENDING_ENTRY") -> bool:
        """Insert an intent; False when it is already recorded (a replayed decision)."""
        self._check_state(state)
        values = {
            "intent_id": intent.intent_id, "strategy_id": intent.strategy_id, "market": intent.market.value,
            "symbol": intent.symbol, "side": intent.side.value, "quantity": intent.quantity,
            "order_type": intent.order_type.value, "price": intent.price,
            "take_profit_price": intent.take_profit_price, "stop_loss_price": intent.stop_loss_price,
            "reduce_only": intent.reduce_only, "signal_id": intent.signal_id, "config_rev": intent.config_rev,
            "state": state, "ts_init": intent.ts_init, "ts_last": intent.ts_init,
        }  # fmt: skip
        try:
            with self._write() as connection:
                connection.execute(insert(schema.intents).values(**values))
        except IntegrityError:
            return False
        return True

    def set_intent_state(self, intent_id: str, state: str, ts: int) -> None:
        self._check_state(state)
        with self._write() as connection:
            result = connection.execute(
                update(schema.intents).where(schema.intents.c.intent_id == intent_id).values(state=state, ts_last=ts)
            )
            if result.rowcount != 1:
                raise LedgerError(f"no intent {intent_id!r} in the ledger")

    def intent_states(self, state: str | None = None) -> dict[str, str]:
        statement = select(schema.intents.c.intent_id, schema.intents.c.state)
        if state is not None:
            statement = statement.where(schema.intents.c.state == state)
        return {row["intent_id"]: row["state"] for row in self._read(statement)}

    def get_intent(self, intent_id: str) -> Intent | None:
        rows = self._read(select(schema.intents).where(schema.intents.c.intent_id == intent_id))
        if not rows:
            return None
        row = rows[0]
        return Intent(
            IntentId(row["intent_id"]), StrategyId(row["strategy_id"]), Market(row["market"]), row["symbol"],
            Side(row["side"]), row["quantity"], row["ts_init"], OrderType(row["order_type"]), row["price"],
            row["take_profit_price"], row["stop_loss_price"], row["reduce_only"], row["signal_id"], row["config_rev"],
        )  # fmt: skip

    @staticmethod
    def _check_state(state: str) -> None:
        if state not in INTENT_STATES:
            raise ValueError(f"intent state must be one of {INTENT_STATES}, got {state!r}")

    # ---- orders ------------------------------------------------------------------------------------
    @staticmethod
    def _order_values(order: Order) -> dict[str, Any]:
        return {
            "client_order_id": order.client_order_id, "intent_id": order.intent_id, "market": order.market.value,
            "symbol": order.symbol, "side": order.side.value, "order_type": order.order_type.value,
            "quantity": order.quantity, "price": order.price, "stop_price": order.stop_price,
            "time_in_force": order.time_in_force.value if order.time_in_force else None,
            "reduce_only": order.reduce_only, "status": order.status.value, "venue_order_id": order.venue_order_id,
            "filled_quantity": order.filled_quantity, "average_price": order.average_price,
            "reject_reason": order.reject_reason, "ts_init": order.ts_init, "ts_last": order.ts_last,
        }  # fmt: skip

    def record_order(self, order: Order) -> bool:
        """Insert a new order (before its request is sent). False when the id is already recorded."""
        try:
            with self._write() as connection:
                connection.execute(insert(schema.orders).values(**self._order_values(order)))
                connection.execute(
                    insert(schema.order_events).values(
                        client_order_id=order.client_order_id,
                        status=order.status.value,
                        reason=None,
                        ts_event=order.ts_last,
                    )
                )
        except IntegrityError:
            return False
        if order.status is OrderStatus.SUBMITTED:
            crash_hook.reached("after_submit", order.client_order_id)
        return True

    def update_order(self, order: Order, reason: str | None = None) -> None:
        """Store the order's current state and append the transition to its event history."""
        if crash_hook.armed() and order.status is not OrderStatus.SUBMITTED:
            stored = self.get_order(order.client_order_id)
            if stored is not None and stored.status is OrderStatus.SUBMITTED:
                crash_hook.reached("before_ack", order.client_order_id)
        values = self._order_values(order)
        with self._write() as connection:
            result = connection.execute(
                update(schema.orders)
                .where(schema.orders.c.client_order_id == order.client_order_id)
                .values(**{k: v for k, v in values.items() if k != "client_order_id"})
            )
            if result.rowcount != 1:
                raise LedgerError(f"no order {order.client_order_id!r} in the ledger")
            connection.execute(
                insert(schema.order_events).values(
                    client_order_id=order.client_order_id,
                    status=order.status.value,
                    reason=reason or order.reject_reason,
                    ts_event=order.ts_last,
                )
            )

    @staticmethod
    def _order_from(row: RowMapping) -> Order:
        return Order.restore(
            client_order_id=ClientOrderId(row["client_order_id"]), intent_id=IntentId(row["intent_id"]),
            market=Market(row["market"]), symbol=row["symbol"], side=Side(row["side"]),
            order_type=OrderType(row["order_type"]), quantity=row["quantity"], ts_init=row["ts_init"],
            price=row["price"], stop_price=row["stop_price"],
            time_in_force=TimeInForce(row["time_in_force"]) if row["time_in_force"] else None,
            reduce_only=row["reduce_only"], status=OrderStatus(row["status"]),
            venue_order_id=VenueOrderId(row["venue_order_id"]) if row["venue_order_id"] is not None else None,
            filled_quantity=row["filled_quantity"], average_price=row["average_price"],
            reject_reason=row["reject_reason"], ts_last=row["ts_last"],
        )  # fmt: skip

    def get_order(self, client_order_id: str) -> Order | None:
        rows = self._read(select(schema.orders).where(schema.orders.c.client_order_id == client_order_id))
        return self._order_from(rows[0]) if rows else None

    def orders(self, intent_id: str | None = None) -> list[Order]:
        statement = select(schema.orders).order_by(schema.orders.c.ts_init, schema.orders.c.client_order_id)
        if intent_id is not None:
            statement = statement.where(schema.orders.c.intent_id == intent_id)
        return [self._order_from(row) for row in self._read(statement)]

    def unfinished_orders(self) -> list[Order]:
        """Orders not known to be terminal: open ones, and those whose submission outcome is unknown."""
        terminal = [s.value for s in OrderStatus if s.is_terminal]
        statement = select(schema.orders).where(schema.orders.c.status.not_in(terminal))
        return [self._order_from(row) for row in self._read(statement.order_by(schema.orders.c.ts_init))]

    def order_history(self, client_order_id: str) -> list[tuple[str, int]]:
        statement = (
            select(schema.order_events.c.status, schema.order_events.c.ts_event)
            .where(schema.order_events.c.client_order_id == client_order_id)
            .order_by(schema.order_events.c.id)
        )
        return [(row["status"], row["ts_event"]) for row in self._read(statement)]

    # ---- fills -------------------------------------------------------------------------------------
    def record_fill(self, fill: Fill) -> bool:
        """Insert a fill; False when the same trade of the same order is already recorded."""
        values = {
            "client_order_id": fill.client_order_id, "venue_order_id": fill.venue_order_id,
            "trade_id": fill.trade_id, "market": fill.market.value, "symbol": fill.symbol, "side": fill.side.value,
            "price": fill.price, "quantity": fill.quantity, "fee": fill.fee, "fee_asset": fill.fee_asset,
            "liquidity": fill.liquidity.value, "realized_pnl": fill.realized_pnl, "ts_event": fill.ts_event,
            "ts_init": fill.ts_init,
        }  # fmt: skip
        try:
            with self._write() as connection:
                connection.execute(insert(schema.fills).values(**values))
        except IntegrityError:
            return False
        return True

    def fills(self, client_order_id: str | None = None) -> list[Fill]:
        statement = select(schema.fills).order_by(schema.fills.c.ts_event, schema.fills.c.id)
        if client_order_id is not None:
            statement = statement.where(schema.fills.c.client_order_id == client_order_id)
        return [
            Fill(
                ClientOrderId(row["client_order_id"]),
                VenueOrderId(row["venue_order_id"]),
                TradeId(row["trade_id"]),
                Market(row["market"]),
                row["symbol"],
                Side(row["side"]),
                row["price"],
                row["quantity"],
                row["fee"],
                row["fee_asset"],
                LiquiditySide(row["liquidity"]),
                row["ts_event"],
                row["ts_init"],
                row["realized_pnl"],
            )
            for row in self._read(statement)
        ]

    def fill_deficits(self, since_ns: int = 0) -> list[tuple[Order, Decimal]]:
        """Orders (last changed at or after `since_ns`) whose reported filled quantity is more than the
        sum of their recorded fills, with that sum: a crash between an order's update and its fill's
        write leaves one, and the reconciler fetches the missing trades from the exchange."""
        recent = (schema.orders.c.ts_last >= since_ns, schema.orders.c.filled_quantity != Decimal(0))
        statement = select(schema.orders).where(*recent)
        orders = [self._order_from(row) for row in self._read(statement.order_by(schema.orders.c.ts_init))]
        if not orders:
            return []
        recorded: dict[str, Decimal] = {}
        fills = select(schema.fills.c.client_order_id, schema.fills.c.quantity).where(
            schema.fills.c.client_order_id.in_(select(schema.orders.c.client_order_id).where(*recent))
        )
        for row in self._read(fills):
            recorded[row["client_order_id"]] = recorded.get(row["client_order_id"], Decimal(0)) + row["quantity"]
        found = []
        for order in orders:
            have = recorded.get(order.client_order_id, Decimal(0))
            if have < order.filled_quantity:
                found.append((order, have))
        return found

    def fill_positions(self, market: Market = Market.FUTURES) -> dict[tuple[Market, str], Decimal]:
        """The signed position every symbol's recorded fills add up to (buys minus sells)."""
        statement = select(schema.fills.c.symbol, schema.fills.c.side, schema.fills.c.quantity).where(
            schema.fills.c.market == market.value
        )
        totals: dict[tuple[Market, str], Decimal] = {}
        for row in self._read(statement):
            signed = row["quantity"] if row["side"] == Side.BUY.value else -row["quantity"]
            totals[(market, row["symbol"])] = totals.get((market, row["symbol"]), Decimal(0)) + signed
        return totals

    # ---- positions ---------------------------------------------------------------------------------
    def save_position(self, position: Position) -> None:
        values = {
            "market": position.market.value, "symbol": position.symbol, "quantity": position.quantity,
            "average_entry_price": position.average_entry_price, "realized_pnl": position.realized_pnl,
            "fees": position.fees, "funding": position.funding, "ts_opened": position.ts_opened,
            "ts_last": position.ts_last,
        }  # fmt: skip
        with self._write() as connection:
            self._upsert(connection, schema.positions, values, ("market", "symbol"))

    def positions(self) -> list[Position]:
        statement = select(schema.positions).order_by(schema.positions.c.market, schema.positions.c.symbol)
        return [
            Position(
                Market(row["market"]),
                row["symbol"],
                row["quantity"],
                row["average_entry_price"],
                row["realized_pnl"],
                row["fees"],
                row["funding"],
                row["ts_opened"],
                row["ts_last"],
            )
            for row in self._read(statement)
        ]

    # ---- signals, configuration, transfers, audit -----------------------------------------------------
    def record_signal(self, signal: Signal) -> bool:
        values = {
            "signal_id": signal.signal_id, "strategy_id": signal.strategy_id, "market": signal.market.value,
            "symbol": signal.symbol, "decision": signal.decision.value,
            "side": signal.side.value if signal.side else None,
            "p_up": None if signal.p_up is None else repr(signal.p_up),
            "utility": None if signal.utility is None else repr(signal.utility),
            "size_multiplier": repr(signal.size_multiplier), "model_version": signal.model_version,
            "config_rev": signal.config_rev, "reasons": json.dumps(list(signal.reasons)),
            "quality_flags": signal.quality_flags, "ts_event": signal.ts_event, "ts_init": signal.ts_init,
            "ts_infer": signal.ts_infer,
        }  # fmt: skip
        try:
            with self._write() as connection:
                connection.execute(insert(schema.signals).values(**values))
        except IntegrityError:
            return False
        return True

    def signal_decisions(self) -> dict[str, Decision]:
        rows = self._read(select(schema.signals.c.signal_id, schema.signals.c.decision))
        return {row["signal_id"]: Decision(row["decision"]) for row in rows}

    def record_config_revision(self, revision: str, content: Mapping[str, Any], ts: int) -> bool:
        try:
            with self._write() as connection:
                connection.execute(
                    insert(schema.config_revisions).values(
                        revision=revision, content=json.dumps(content, sort_keys=True), ts_applied=ts
                    )
                )
        except IntegrityError:
            return False
        return True

    def record_transfer(
        self, transfer_id: str, asset: str, amount: Decimal, source: str, target: str, status: str, ts: int
    ) -> None:
        values = {
            "transfer_id": transfer_id, "asset": asset, "amount": amount, "source": source, "target": target,
            "status": status, "ts_init": ts, "ts_last": ts,
        }  # fmt: skip
        with self._write() as connection:
            self._upsert(connection, schema.transfers, values, ("transfer_id",))

    def transfers(self, status: str | None = None) -> list[dict[str, Any]]:
        statement = select(schema.transfers).order_by(schema.transfers.c.ts_init, schema.transfers.c.transfer_id)
        if status is not None:
            statement = statement.where(schema.transfers.c.status == status)
        return [dict(row) for row in self._read(statement)]

    def audit(self, kind: str, detail: Mapping[str, Any], ts: int, subject: str | None = None) -> None:
        with self._write() as connection:
            connection.execute(
                insert(schema.audit_events).values(
                    kind=kind, subject=subject, detail=json.dumps(detail, sort_keys=True, default=str), ts_event=ts
                )
            )

    def audit_events(self, kind: str | None = None) -> list[dict[str, Any]]:
        statement = select(schema.audit_events).order_by(schema.audit_events.c.id)
        if kind is not None:
            statement = statement.where(schema.audit_events.c.kind == kind)
        return [
            {"kind": row["kind"], "subject": row["subject"], "detail": json.loads(row["detail"]), "ts": row["ts_event"]}
            for row in self._read(statement)
        ]
