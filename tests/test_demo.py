from __future__ import annotations

from pathlib import Path

from kestrel.demo import run_demo


def test_demo_runs_on_real_data(shared_data: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    summary = run_demo(duration_s=365 * 24 * 3600)
    out = capsys.readouterr().out
    assert "what ran" in out
    assert summary["market_data"] == "real BTCUSDT 1h futures klines"
    assert 8000 < int(summary["events_replayed"]) < 9000  # one year of hourly bars  # type: ignore[call-overload]
    instruments = summary["instruments"]
    assert isinstance(instruments, dict) and instruments["futures"] > 100 and instruments["spot"] > 100
    assert int(summary["orders_sized"]) > 0  # type: ignore[call-overload]
    assert summary["orders_below_exchange_minimums"] == 0
