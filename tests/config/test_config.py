from __future__ import annotations

import json
from pathlib import Path

import pytest

from kestrel.config.loading import ConfigProblems, config_revision, json_schema, load_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["dev.yaml", "prod.yaml"])
def test_shipped_files_are_valid(name: str) -> None:
    config = load_config(ROOT / "config" / name, env_file=None)
    assert config.environment == name.removesuffix(".yaml")


def test_prod_targets_the_real_exchange_and_dev_the_simulator() -> None:
    prod = load_config(ROOT / "config" / "prod.yaml", env_file=None)
    dev = load_config(ROOT / "config" / "dev.yaml", env_file=None)
    assert prod.venue.futures.rest_url == "https://fapi.binance.com"
    assert prod.venue.spot.ws_url.startswith("wss://stream.binance.com")
    assert prod.storage.ledger_url.startswith("postgresql") and prod.storage.redis_url is not None
    assert dev.venue.spot.rest_url.startswith("http://127.0.0.1")
    assert dev.storage.ledger_url.startswith("sqlite")


def test_every_problem_is_reported_one_line_each(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 1\nrisk:\n  leverage: -3\n  colour: blue\n")
    with pytest.raises(ConfigProblems) as caught:
        load_config(bad, env_file=None)
    lines = [str(p) for p in caught.value.problems]
    assert "environment: required field is missing" in lines
    assert any(line.startswith("risk.leverage: ") and "greater than or equal to 1" in line for line in lines)
    assert "risk.colour: unknown key" in lines
    assert len(lines) == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("environment: dev\nrisk: [1, 2\n", "invalid YAML at line"),
        ("- just\n- a list\n", "top level must be a mapping"),
        ("environment: dev\nvenue:\n  spot:\n    rest_url: ftp://x\n", "venue.spot.rest_url: must be a http"),
        (
            "environment: dev\nexecution:\n  routing:\n    - {min_notional_usdt: 5, maker_wait_ms: 1, slices: 1, "
            "slice_interval_ms: 0}\n",
            "execution.routing: buckets must start at 0",
        ),
        ("environment: dev\nrisk:\n  leverage: 30\n", "leverage must not exceed max_leverage"),
        ("environment: prod\n", "prod must point at the real exchange"),
    ],
)
def test_bad_files_give_clear_reasons(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigProblems) as caught:
        load_config(path, env_file=None)
    assert expected in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigProblems, match="no such file"):
        load_config(tmp_path / "nope.yaml")


def test_environment_overrides_file_and_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("environment: dev\nrisk:\n  leverage: 3\ndata:\n  ingest:\n    micro_batch_ms: 50\n")
    dotenv = tmp_path / ".env"
    dotenv.write_text("KESTREL__RISK__LEVERAGE=4\nKESTREL__VENUE__API_KEY=from-dotenv\nUNRELATED=1\n")
    config = load_config(path, env_file=dotenv)
    assert config.risk.leverage == 4  # .env beats the file
    assert config.data.ingest.micro_batch_ms == 50  # untouched nested values survive
    assert config.venue.api_key is not None and config.venue.api_key.get_secret_value() == "from-dotenv"
    monkeypatch.setenv("KESTREL__RISK__LEVERAGE", "6")
    monkeypatch.setenv("KESTREL__DATA__INGEST__MICRO_BATCH_MS", "10")
    config = load_config(path, env_file=dotenv)
    assert config.risk.leverage == 6  # the environment beats .env
    assert config.data.ingest.micro_batch_ms == 10


def test_bad_environment_override_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KESTREL__RISK__LEVERAGE", "-1")
    with pytest.raises(ConfigProblems, match=r"risk\.leverage"):
        load_config(ROOT / "config" / "dev.yaml", env_file=None)


def test_revision_is_stable_and_sensitive() -> None:
    a = load_config(ROOT / "config" / "dev.yaml", env_file=None)
    b = load_config(ROOT / "config" / "dev.yaml", env_file=None)
    c = load_config(ROOT / "config" / "dev.yaml", overrides={"seed": 7}, env_file=None)
    assert config_revision(a) == config_revision(b) != config_revision(c)


def test_committed_schema_is_current() -> None:
    committed = json.loads((ROOT / "config" / "kestrel.schema.json").read_text())
    assert committed == json.loads(json.dumps(json_schema())), (
        "run: ./dev kestrel config schema --out config/kestrel.schema.json"
    )
    assert "environment" in committed["required"]


def test_configuration_reference_is_current() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "scripts/config_docs.py", "--check"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout
