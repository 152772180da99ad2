"""Ledger tables (SQLAlchemy 2 Core). Amounts are exact decimal text; times are integer ns.

Decimal amounts are stored as text, not NUMERIC: SQLite has no exact decimal type (it would round
through a float), and one representation for both engines keeps a ledger portable between them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData()


class DecimalText(TypeDecorator[Decimal]):
    """Decimal ↔ canonical text, exact on every engine."""

    impl = String(64)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"ledger amounts must be Decimal, got {type(value).__name__}")
        return format(value, "f")

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


intents = Table(
    "intents",
    metadata,
    Column("intent_id", String(64), primary_key=True),
    Column("strategy_id", String(64), nullable=False),
    Column("market", String(16), nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("side", String(8), nullable=False),
    Column("quantity", DecimalText, nullable=False),
    Column("order_type", String(32), nullable=False),
    Column("price", DecimalText),
    Column("take_profit_price", DecimalText),
    Column("stop_loss_price", DecimalText),
    Column("reduce_only", Boolean, nullable=False, default=False),
    Column("signal_id", String(64)),
    Column("config_rev", String(32)),
    Column("state", String(24), nullable=False),  # PENDING_ENTRY, ACTIVE, PENDING_CLOSING, CLOSED
    Column("ts_init", BigInteger, nullable=False),
    Column("ts_last", BigInteger, nullable=False),
)

orders = Table(
    "orders",
    metadata,
    Column("client_order_id", String(36), primary_key=True),
    Column("intent_id", String(64), nullable=False, index=True),
    Column("market", String(16), nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("side", String(8), nullable=False),
    Column("order_type", String(32), nullable=False),
    Column("quantity", DecimalText, nullable=False),
    Column("price", DecimalText),
    Column("stop_price", DecimalText),
    Column("time_in_force", String(8)),
    Column("reduce_only", Boolean, nullable=False, default=False),
    Column("status", String(24), nullable=False),
    Column("venue_order_id", BigInteger),
    Column("filled_quantity", DecimalText, nullable=False),
    Column("average_price", DecimalText, nullable=False),
    Column("reject_reason", Text),
    Column("ts_init", BigInteger, nullable=False),
    Column("ts_last", BigInteger, nullable=False),
    Index("ix_orders_status", "status"),
)

order_events = Table(
    "order_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_order_id", String(36), nullable=False, index=True),
    Column("status", String(24), nullable=False),
    Column("reason", Text),
    Column("ts_event", BigInteger, nullable=False),
)

fills = Table(
    "fills",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_order_id", String(36), nullable=False, index=True),
    Column("venue_order_id", BigInteger, nullable=False),
    Column("trade_id", BigInteger, nullable=False),
    Column("market", String(16), nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("side", String(8), nullable=False),
    Column("price", DecimalText, nullable=False),
    Column("quantity", DecimalText, nullable=False),
    Column("fee", DecimalText, nullable=False),
    Column("fee_asset", String(16), nullable=False),
    Column("liquidity", String(8), nullable=False),
    Column("realized_pnl", DecimalText, nullable=False),
    Column("ts_event", BigInteger, nullable=False),
    Column("ts_init", BigInteger, nullable=False),
    # a fill is reported by the user stream and again by REST polling: the pair identifies it
    UniqueConstraint("market", "symbol", "trade_id", "client_order_id", name="uq_fills_trade"),
)

positions = Table(
    "positions",
    metadata,
    Column("market", String(16), primary_key=True),
    Column("symbol", String(32), primary_key=True),
    Column("quantity", DecimalText, nullable=False),
    Column("average_entry_price", DecimalText, nullable=False),
    Column("realized_pnl", DecimalText, nullable=False),
    Column("fees", DecimalText, nullable=False),
    Column("funding", DecimalText, nullable=False),
    Column("ts_opened", BigInteger, nullable=False),
    Column("ts_last", BigInteger, nullable=False),
)

signals = Table(
    "signals",
    metadata,
    Column("signal_id", String(64), primary_key=True),
    Column("strategy_id", String(64), nullable=False),
    Column("market", String(16), nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("decision", String(16), nullable=False),
    Column("side", String(8)),
    Column("p_up", Text),
    Column("utility", Text),
    Column("size_multiplier", Text, nullable=False),
    Column("model_version", String(64)),
    Column("config_rev", String(32)),
    Column("reasons", Text, nullable=False),
    Column("quality_flags", Integer, nullable=False),
    Column("ts_event", BigInteger, nullable=False),
    Column("ts_init", BigInteger, nullable=False),
    Column("ts_infer", BigInteger, nullable=False),
)

config_revisions = Table(
    "config_revisions",
    metadata,
    Column("revision", String(32), primary_key=True),
    Column("content", Text, nullable=False),  # the masked effective configuration, JSON
    Column("ts_applied", BigInteger, nullable=False),
)

transfers = Table(
    "transfers",
    metadata,
    Column("transfer_id", String(64), primary_key=True),
    Column("asset", String(16), nullable=False),
    Column("amount", DecimalText, nullable=False),
    Column("source", String(16), nullable=False),
    Column("target", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("ts_init", BigInteger, nullable=False),
    Column("ts_last", BigInteger, nullable=False),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(48), nullable=False, index=True),
    Column("subject", String(64)),
    Column("detail", Text, nullable=False),  # JSON
    Column("ts_event", BigInteger, nullable=False),
)
