"""`kestrel demo`: simulator replaying real recordings, the paper node trading, a clean summary."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kestrel.demo import run_demo
from kestrel.storage.ledger import Ledger

ROOT = Path(__file__).resolve().parents[1]


def test_demo_trades_the_replayed_recordings(shared_data: Path, tmp_path: Path) -> None:
    summary = run_demo(duration_s=8.0, speed=4.0, workdir=tmp_path, quiet=True)
    assert summary.market_events > 200  # depth, trades and marks of BTCUSDT and ETHUSDT
    assert summary.gaps == 0  # the recordings have no id gaps and the feed saw none
    assert summary.orders > 0 and summary.fills > 0 and summary.strategy_errors == 0
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    assert len(ledger.orders()) >= summary.orders  # every order went through the ledger
    assert len(ledger.fills()) == summary.fills
    assert ledger.audit_events("node.stopped")


def test_demo_command_ends_cleanly_with_a_summary(shared_data: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kestrel.cli", "demo", "--duration", "4", "--workdir", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Summary:" in result.stdout and "orders" in result.stdout and "Traceback" not in result.stderr
