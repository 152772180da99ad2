from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

from kestrel.backtest.compare import compare_runs

ROOT = Path(__file__).resolve().parents[2]
ORDERS = ["client_order_id", "market", "symbol", "side", "order_type", "quantity", "price", "status",
          "filled_quantity", "average_price", "ts_created"]  # fmt: skip
FILLS = ["client_order_id", "market", "symbol", "side", "price", "quantity", "fee", "fee_asset", "liquidity"]


def make_run(path: Path, orders: list[list[str]], fills: list[list[str]]) -> Path:
    path.mkdir(parents=True)
    for name, header, rows in (("orders.csv", ORDERS, orders), ("fills.csv", FILLS, fills)):
        with (path / name).open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
    return path


ORDER = ["bt-1", "futures", "BTCUSDT", "BUY", "MARKET", "0.002", "", "FILLED", "0.002", "60000", "10"]
FILL = ["bt-1", "futures", "BTCUSDT", "BUY", "60000", "0.002", "0.048", "USDT", "TAKER"]


def test_identical_runs_ignore_ids_clocks_and_decimal_spelling(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", [ORDER], [FILL])
    other = ["kst123", "futures", "BTCUSDT", "BUY", "MARKET", "0.0020", "None", "FILLED", "0.002", "60000.0", "99"]
    b = make_run(tmp_path / "b", [other], [["kst123", *FILL[1:]]])
    differences, counts = compare_runs(a, b)
    assert differences == [] and counts == {"orders": 1, "fills": 1}


def test_every_difference_is_listed(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", [ORDER, ORDER], [FILL])
    b = make_run(tmp_path / "b", [ORDER], [[*FILL[:4], "60001", *FILL[5:]]])
    differences, _ = compare_runs(a, b)
    assert [str(d) for d in differences] == ["orders.count: 2 != 1", "fills[0].price: 60000 != 60001"]
    result = subprocess.run([sys.executable, "-m", "kestrel.cli", "compare", str(a), str(b)],
                            capture_output=True, text=True, cwd=ROOT, check=False, timeout=120)  # fmt: skip
    assert result.returncode == 1 and "2 difference(s)" in result.stdout
    copy = shutil.copytree(a, tmp_path / "c")
    same = subprocess.run([sys.executable, "-m", "kestrel.cli", "compare", str(a), str(copy)],
                          capture_output=True, text=True, cwd=ROOT, check=False, timeout=120)  # fmt: skip
    assert same.returncode == 0 and same.stdout.startswith("identical: 2 orders, 1 fills")
    missing = subprocess.run([sys.executable, "-m", "kestrel.cli", "compare", str(a), str(tmp_path / "nope")],
                             capture_output=True, text=True, cwd=ROOT, check=False, timeout=120)  # fmt: skip
    assert (
        missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1 and "Traceback" not in missing.stderr
    )
