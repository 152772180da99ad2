"""Every command, given bad input, prints one clear line and exits non-zero, without a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def kestrel(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "kestrel.cli", *args],
        capture_output=True, text=True, cwd=cwd or ROOT, env=full_env, timeout=120, check=False,
    )  # fmt: skip


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.fixture
def bad_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "broken.yaml"
    path.write_text("environment: dev\nrisk: {leverage: [\n")
    return path


COMMANDS_TAKING_A_CONFIG = [["config", "check"], ["config", "show"]]


@pytest.mark.parametrize("command", COMMANDS_TAKING_A_CONFIG)
def test_missing_file(command: list[str], tmp_path: Path) -> None:
    result = kestrel(*command, str(tmp_path / "missing.yaml"))
    assert_one_line_error(result, "missing.yaml", "no such file")
    assert result.returncode == 2


@pytest.mark.parametrize("command", COMMANDS_TAKING_A_CONFIG)
def test_invalid_yaml(command: list[str], bad_yaml: Path) -> None:
    result = kestrel(*command, str(bad_yaml))
    assert_one_line_error(result, "broken.yaml", "invalid YAML")
    assert result.returncode == 2


@pytest.mark.parametrize(
    "command", [["demo"], ["version"], ["config", "check"], ["config", "show"], ["config", "schema"]]
)
def test_unknown_option(command: list[str]) -> None:
    result = kestrel(*command, "--no-such-flag")
    assert_one_line_error(result, "--no-such-flag")
    assert result.returncode == 2


def test_unknown_command_and_bad_value() -> None:
    assert_one_line_error(kestrel("fly"), "fly")
    assert_one_line_error(kestrel("demo", "--duration", "soon"), "--duration")
    assert_one_line_error(kestrel("demo", "--duration", "-5"), "--duration")


def test_check_reports_three_problems_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "three.yaml"
    path.write_text("risk:\n  leverage: -1\nfavourite_colour: blue\n")
    result = kestrel("config", "check", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3
    assert any("environment: required field is missing" in line for line in lines)
    assert any("risk.leverage:" in line for line in lines)
    assert any("favourite_colour: unknown key" in line for line in lines)


@pytest.mark.parametrize("name", ["dev.yaml", "prod.yaml"])
def test_check_shipped_files(name: str) -> None:
    result = kestrel("config", "check", f"config/{name}")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 1 and "OK" in result.stdout


def test_show_masks_secrets() -> None:
    secret = "s3cr3t-value-that-must-not-print"
    result = kestrel("config", "show", "config/dev.yaml", env={"KESTREL__VENUE__API_SECRET": secret})
    assert result.returncode == 0, result.stderr
    assert secret not in result.stdout + result.stderr
    assert "api_secret: '**********'" in result.stdout


def test_schema_export(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    assert kestrel("config", "schema", "--out", str(out)).returncode == 0
    assert '"environment"' in out.read_text()
    assert_one_line_error(kestrel("config", "schema", "--out", str(tmp_path / "no" / "dir.json")), "dir.json")
