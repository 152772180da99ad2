"""The DuckDB catalog over a recording (R-ST-2): one SQL view per stream, and a summary.

Views are named after the streams (`depth`, `book_ticker`, `trade`, `agg_trade`, `kline`,
`mark_price`, `liquidation`, `funding_rate`, `open_interest`, `depth_snapshot`) and span both markets;
the hive partition keys `symbol`, `date`, `hour` are columns. Example:

    SELECT symbol, count(*), max(ts_init - ts_event) / 1e6 AS max_latency_ms FROM trade GROUP BY symbol
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from kestrel.core.errors import DataError
from kestrel.core.events import QualityFlag
from kestrel.storage.journal import previous_recoveries
from kestrel.storage.layout import MARKET_DIR, resolve_root
from kestrel.storage.schema import STREAMS

_REJECTED = int(QualityFlag.DUPLICATE | QualityFlag.OUT_OF_ORDER)
_GAP = int(QualityFlag.GAP_BEFORE)
assert int(QualityFlag.DUPLICATE) == 8  # written literally in the SQL below

# Missing ids per (market, symbol), from the ids themselves in id order (duplicates excluded; late
# rows count: they are data that arrived, only out of order).
# (The f-strings flagged S608 below are built from our own constants — stream names, flag bits —
# never from user input; user SQL goes to `query` as is, which is its purpose.)
_ID_GAP_SQL = {
    "depth": """
        SELECT market, symbol, count(*) FILTER (WHERE broken) AS id_gaps FROM (
            SELECT market, symbol,
                   CASE WHEN market = 'futures'
                        THEN previous_final_update_id <> lag(final_update_id) OVER w
                        ELSE first_update_id <> lag(final_update_id) OVER w + 1 END AS broken
            FROM depth WHERE flags & 8 = 0
            WINDOW w AS (PARTITION BY market, symbol ORDER BY final_update_id))
        GROUP BY ALL""",
    "trade": """
        SELECT market, symbol, coalesce(sum(missing), 0) AS missing_ids FROM (
            SELECT market, symbol, trade_id - lag(trade_id) OVER w - 1 AS missing
            FROM (SELECT DISTINCT market, symbol, trade_id FROM trade WHERE flags & 8 = 0)
            WINDOW w AS (PARTITION BY market, symbol ORDER BY trade_id))
        GROUP BY ALL""",
    "agg_trade": """
        SELECT market, symbol, coalesce(sum(missing), 0) AS missing_ids FROM (
            SELECT market, symbol, aggregate_id - lag(aggregate_id) OVER w - 1 AS missing
            FROM (SELECT DISTINCT market, symbol, aggregate_id FROM agg_trade WHERE flags & 8 = 0)
            WINDOW w AS (PARTITION BY market, symbol ORDER BY aggregate_id))
        GROUP BY ALL""",
}


def _iso(ts_ns: int | None) -> str | None:
    if ts_ns is None:
        return None
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Catalog:
    """A read-only DuckDB view of one recording directory."""

    def __init__(self, path: str | Path) -> None:
        self.root = resolve_root(Path(path))
        if not self.root.exists():
            raise DataError(f"{path}: no such directory")
        if not (self.root / MARKET_DIR).is_dir():
            raise DataError(f"{path}: not a Kestrel recording (no '{MARKET_DIR}/' folder)")
        self.connection = duckdb.connect(":memory:")
        self.streams: list[str] = []
        for spec in STREAMS:
            pattern = self.root / MARKET_DIR / "*" / spec.name / "symbol=*" / "date=*" / "hour=*" / "part-*.parquet"
            if not any((self.root / MARKET_DIR).glob(f"*/{spec.name}/symbol=*/date=*/hour=*/part-*.parquet")):
                continue
            source = str(pattern).replace("'", "''")
            self.connection.execute(
                f"CREATE VIEW {spec.name} AS SELECT * FROM read_parquet('{source}', "  # noqa: S608
                "hive_partitioning = true, union_by_name = true)"
            )
            self.streams.append(spec.name)

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run SQL; returns (column names, rows). Errors become one-line DataErrors."""
        try:
            result = self.connection.execute(sql)
            columns = [item[0] for item in result.description or []]
            return columns, result.fetchall()
        except duckdb.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise DataError(f"query failed: {first}") from None

    def info(self) -> dict[str, Any]:
        """Streams, symbols, time range, row counts, gaps, files, and recorder losses."""
        streams: dict[str, Any] = {}
        for name in self.streams:
            _, rows = self.query(
                f"SELECT market, count(*), count(DISTINCT symbol), min(ts_event), max(ts_event), "  # noqa: S608
                f"count(*) FILTER (WHERE flags & {_GAP} <> 0), count(*) FILTER (WHERE flags & {_REJECTED} <> 0) "
                f"FROM {name} GROUP BY market ORDER BY market"
            )
            per_market: dict[str, Any] = {}
            for market, count, symbols, first, last, flagged_gaps, rejected in rows:
                per_market[market] = {
                    "rows": count,
                    "symbols": symbols,
                    "first": _iso(first),
                    "last": _iso(last),
                    "gaps_flagged": flagged_gaps,
                    "duplicate_or_late_rows": rejected,
                }
            if name in _ID_GAP_SQL:
                _, gap_rows = self.query(_ID_GAP_SQL[name])
                for market, symbol, value in gap_rows:
                    entry = per_market[market].setdefault("id_gaps_by_symbol", {})
                    if value:
                        entry[symbol] = int(value)
                for entry in per_market.values():
                    entry["id_gaps"] = sum(entry.get("id_gaps_by_symbol", {}).values())
            files = list((self.root / MARKET_DIR).glob(f"*/{name}/symbol=*/date=*/hour=*/part-*.parquet"))
            streams[name] = {
                "markets": per_market,
                "files": len(files),
                "bytes": sum(path.stat().st_size for path in files),
            }
        _, symbol_rows = self.query(self._symbols_sql()) if self.streams else ([], [])
        losses = previous_recoveries(self.root)
        return {
            "path": str(self.root),
            "streams": streams,
            "symbols": sorted({f"{market}:{symbol}" for market, symbol in symbol_rows}),
            "recorder_crashes": [
                {
                    "session": report.get("sessions", ["?"])[0],
                    "recovered_rows": report.get("recovered_rows", 0),
                    "lost_window_ms": report.get("lost_window_ms", 0),
                    "torn_log_bytes": report.get("torn_log_bytes", 0),
                }
                for report in losses
            ],
        }

    def _symbols_sql(self) -> str:
        return " UNION ".join(f"SELECT DISTINCT market, symbol FROM {name}" for name in self.streams)  # noqa: S608

    def close(self) -> None:
        self.connection.close()
