"""The run directory `data/runs/{run_id}/` (R-RS-6 governance): everything needed to trust and redo a run.

- params.json: the parameter snapshot (strategy, its parameters, symbols, window, seed, engine rules,
  latency models, fees, balances, the effective configuration);
- shas.json: SHA-256 of every data file, of the code (all `kestrel` sources) and of uv.lock, and the
  fill-list hash (equal ⇔ identical fills);
- fills.csv, orders.csv, equity.csv, round_trips.csv, metrics.json, report.html.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import kestrel
from kestrel.backtest.driver import BacktestResult
from kestrel.backtest.metrics import compute_metrics, round_trips
from kestrel.backtest.report import render_report


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def code_sha256() -> str:
    """SHA-256 over the sources of the installed `kestrel` package (path and content, sorted)."""
    root = Path(kestrel.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def lock_sha256() -> str | None:
    for parent in Path(kestrel.__file__).resolve().parents:
        lock = parent / "uv.lock"
        if lock.exists():
            return file_sha256(lock)
    return None


def _json_default(value: object) -> object:
    return str(value)


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def write_run(
    run_dir: Path, result: BacktestResult, params: Mapping[str, Any], data_files: Sequence[Path]
) -> dict[str, Any]:
    """Write every artefact of a finished run; returns the metrics."""
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics = compute_metrics(result)
    trips = round_trips(result.fills)
    shas = {
        "data": {str(path): file_sha256(path) for path in data_files},
        "code": code_sha256(),
        "uv_lock": lock_sha256(),
        "fills": result.fills_hash(),
    }
    (run_dir / "params.json").write_text(
        json.dumps(params, indent=2, sort_keys=True, default=_json_default) + "\n", encoding="utf-8"
    )
    (run_dir / "shas.json").write_text(json.dumps(shas, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    fill_fields = list(asdict(result.fills[0]).keys()) if result.fills else ["ts_event"]
    _write_csv(run_dir / "fills.csv", fill_fields, ([str(v) for v in asdict(f).values()] for f in result.fills))
    order_fields = [
        "order_id",
        "client_order_id",
        "market",
        "symbol",
        "side",
        "order_type",
        "status",
        "quantity",
        "filled_quantity",
        "average_price",
        "price",
        "stop_price",
        "time_in_force",
        "reduce_only",
        "ts_created",
        "ts_updated",
        "expiry_reason",
    ]
    _write_csv(
        run_dir / "orders.csv", order_fields, ([str(getattr(o, name)) for name in order_fields] for o in result.orders)
    )
    _write_csv(
        run_dir / "equity.csv",
        ["ts", "equity", "gross_exposure"],
        ((p.ts, p.equity, p.gross_exposure) for p in result.equity),
    )
    _write_csv(
        run_dir / "round_trips.csv",
        ["symbol", "side", "ts_open", "ts_close", "quantity", "entry_price", "exit_price", "pnl"],
        ((t.symbol, t.side, t.ts_open, t.ts_close, t.quantity, t.entry_price, t.exit_price, t.pnl) for t in trips),
    )
    shown = {k: v for k, v in params.items() if k not in {"config"}}
    report = render_report(
        run_dir.name, shown, metrics, [(p.ts, p.equity, p.gross_exposure) for p in result.equity], trips
    )
    (run_dir / "report.html").write_text(report, encoding="utf-8")
    return metrics
