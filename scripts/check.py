"""`./dev check` / `make check`: format check, lint, types, import contracts, docs, then the tests.

Runs every step even when one fails, then exits non-zero if any did, so one run shows everything.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

STEPS: list[tuple[str, list[str]]] = [
    ("format", [str(BIN / "ruff"), "format", "--check", "src", "tests", "benchmarks", "scripts"]),
    ("lint", [str(BIN / "ruff"), "check", "src", "tests", "benchmarks", "scripts"]),
    ("types", [str(BIN / "mypy")]),
    ("imports", [str(BIN / "lint-imports"), "--no-cache"]),
    ("docs", [sys.executable, "scripts/config_docs.py", "--check"]),
    ("tests", [sys.executable, "-m", "pytest", "-q", *sys.argv[1:]]),
]


def main() -> int:
    failed = []
    for name, command in STEPS:
        print(
            f"== {name}: {' '.join(Path(part).name if i == 0 else part for i, part in enumerate(command))}", flush=True
        )
        if subprocess.run(command, cwd=ROOT, check=False).returncode != 0:
            failed.append(name)
    print("== check: " + ("all passed" if not failed else "FAILED: " + ", ".join(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
