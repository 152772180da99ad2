"""The trading ledger (R-ST-5): orders, fills, positions, intents, signals, config revisions, transfers
and audit events, in SQLite (embedded default) or PostgreSQL, one schema, Alembic migrations."""

from kestrel.storage.ledger.store import Ledger, LedgerError

__all__ = ["Ledger", "LedgerError"]
