"""Compare two runs' orders and fills (`kestrel compare RUN_A RUN_B`).

A backtest and a paper run of the same strategy on the same recording should send the same orders and
get the same fills; this lists every difference. Orders are matched by position in submission order
(creation time at the millisecond, then exchange order id) and fills by position in execution order,
since client order ids and clocks differ between modes (a backtest names orders `bt-N` and stamps
nanoseconds, a node hashes intent ids and reads whole milliseconds off the wire): ids and timestamps
are not compared. A paper run in the simulator's lockstep mode (docs/lockstep.md) is expected to match
its backtest exactly.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from kestrel.core.errors import DataError

NANOS_PER_MILLI = 1_000_000

ORDER_KEYS = ("market", "symbol", "side", "order_type", "quantity", "price", "stop_price", "time_in_force",
              "reduce_only", "status", "filled_quantity", "average_price")  # fmt: skip
FILL_KEYS = ("market", "symbol", "side", "price", "quantity", "fee", "fee_asset", "liquidity")


@dataclass(frozen=True, slots=True)
class Difference:
    kind: str  # "orders" or "fills"
    index: int  # position in the run (-1: the counts differ)
    field: str
    a: str
    b: str

    def __str__(self) -> str:
        where = f"{self.kind}[{self.index}]" if self.index >= 0 else self.kind
        return f"{where}.{self.field}: {self.a} != {self.b}"


def _rows(run_dir: Path, name: str) -> list[dict[str, str]]:
    path = run_dir / name
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: no such run directory")
    if not path.is_file():
        raise DataError(f"{path}: missing (is {run_dir} a backtest or node run directory?)")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    if name == "orders.csv":
        rows.sort(key=_submission_order)
    return rows


def _integer(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


def _submission_order(row: dict[str, str]) -> tuple[int, int]:
    """Creation time at the millisecond (what the wire carries: a paper run's times are whole ms), then
    the exchange's order id, which it gives in arrival order. The sort is stable, so orders refused
    before getting an id (0) keep the run's own order among themselves."""
    return _integer(row.get("ts_created")) // NANOS_PER_MILLI, _integer(row.get("order_id"))


def _same(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return Decimal(a) == Decimal(b)  # "0.0020" and "0.002" are the same quantity
    except (InvalidOperation, ValueError):
        return a in ("", "None") and b in ("", "None")


def compare_runs(run_a: Path, run_b: Path) -> tuple[list[Difference], dict[str, int]]:
    """Every difference between the two runs, and the counts compared."""
    differences: list[Difference] = []
    counts: dict[str, int] = {}
    for kind, keys in (("orders", ORDER_KEYS), ("fills", FILL_KEYS)):
        rows_a, rows_b = _rows(run_a, f"{kind}.csv"), _rows(run_b, f"{kind}.csv")
        counts[kind] = min(len(rows_a), len(rows_b))
        if len(rows_a) != len(rows_b):
            differences.append(Difference(kind, -1, "count", str(len(rows_a)), str(len(rows_b))))
        for index, (a, b) in enumerate(zip(rows_a, rows_b, strict=False)):
            differences.extend(
                Difference(kind, index, key, a.get(key, ""), b.get(key, ""))
                for key in keys
                if not _same(a.get(key, ""), b.get(key, ""))
            )
    return differences, counts
