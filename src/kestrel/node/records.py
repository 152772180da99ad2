"""The node's run directory: orders and fills in the backtest's format, so `kestrel compare` can
put a paper run beside a backtest of the same strategy on the same recording."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path

from kestrel.core.orders import Fill
from kestrel.core.venue import OrderSnapshot

ORDER_FIELDS = (
    "order_id", "client_order_id", "market", "symbol", "side", "order_type", "status", "quantity",
    "filled_quantity", "average_price", "price", "stop_price", "time_in_force", "reduce_only", "ts_created",
    "ts_updated", "expiry_reason",
)  # fmt: skip


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def write_node_run(
    run_dir: Path, orders: Sequence[OrderSnapshot], fills: Sequence[Fill], summary: dict[str, object]
) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    fill_fields = list(asdict(fills[0]).keys()) if fills else [f.name for f in Fill.__dataclass_fields__.values()]
    _write_csv(run_dir / "fills.csv", fill_fields, ([str(v) for v in asdict(f).values()] for f in fills))
    _write_csv(
        run_dir / "orders.csv", ORDER_FIELDS, ([str(getattr(o, name, "")) for name in ORDER_FIELDS] for o in orders)
    )
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
