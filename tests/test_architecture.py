"""The layer contracts of pyproject.toml ([tool.importlinter]) hold: dependencies point downward."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], capture_output=True, text=True, cwd=ROOT, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower() or "0 broken" in result.stdout


def test_a_planted_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    """The contract can fail: core importing the CLI is reported as broken."""
    shutil.copytree(ROOT / "src", tmp_path / "src")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "src" / "kestrel" / "core" / "planted.py").write_text("import kestrel.cli\n")
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], capture_output=True, text=True, cwd=tmp_path, timeout=300, check=False,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "src")},
    )  # fmt: skip
    assert result.returncode != 0
    assert "kestrel.core.planted -> kestrel.cli" in result.stdout


def test_core_reads_no_wall_clock_outside_clock_module() -> None:
    offenders = []
    for path in (ROOT / "src" / "kestrel").rglob("*.py"):
        if path.name == "clock.py" and path.parent.name == "core":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            wall = any(call in line for call in ("time.time()", "time.time_ns()", "datetime.now(", "datetime.utcnow("))
            if wall and "noqa: clock" not in line:
                offenders.append(f"{path.relative_to(ROOT)}:{number}")
    assert not offenders, "time must come from the Clock: " + ", ".join(offenders)
