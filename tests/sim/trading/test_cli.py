"""`kestrel sim serve` with trading accounts: the start line's credentials work for signed REST;
bad account input is one line; accounts files and balance flags become TradingOptions."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import pytest

from kestrel.binance.http.signing import sign
from kestrel.core.errors import ConfigurationError
from kestrel.sim.trading.options import demo_credentials, load_accounts_file, trading_options_from_cli
from tests.test_cli import assert_one_line_error, kestrel

ROOT = Path(__file__).resolve().parents[3]
KEY, SECRET = "K" * 64, "S" * 64


def _signed_get(rest_url: str, path: str, key: str, secret: str) -> tuple[dict[str, object], dict[str, str]]:
    with urllib.request.urlopen(rest_url + "/api/v3/time", timeout=10) as response:
        now = json.loads(response.read())["serverTime"]
    query = urlencode({"timestamp": now})
    request = urllib.request.Request(
        f"{rest_url}{path}?{query}&signature={sign(secret, query)}", headers={"X-MBX-APIKEY": key}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read()), dict(response.headers)


def test_serve_prints_accounts_that_trade(tmp_path: Path) -> None:
    stats = tmp_path / "stats.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "kestrel.cli", "sim", "serve", "--symbols", "BTCUSDT", "--port", "0",
         "--account", f"alice={KEY}:{SECRET}", "--balance", "spot:USDT=2500", "--balance", "futures:USDT=700",
         "--stats-json", str(stats), "--duration", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = json.loads(process.stdout.readline())
        assert line["accounts"] == [{"name": "alice", "api_key": KEY, "api_secret": SECRET}]
        account, _ = _signed_get(line["rest_url"], "/api/v3/account", KEY, SECRET)
        balances = {b["asset"]: b["free"] for b in account["balances"]}  # type: ignore[union-attr]
        assert balances == {"USDT": "2500.00000000"}
        futures, headers = _signed_get(line["rest_url"], "/fapi/v3/balance", KEY, SECRET)
        assert futures[0]["balance"] == "700.00000000"  # type: ignore[index]
        assert headers["X-MBX-USED-WEIGHT-1M"] == "5"  # balance; the time request weighs on spot
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    document = json.loads(stats.read_text())
    assert document["trading"]["accounts"] == ["alice"]
    assert document["trading"]["signature_failures"] == 0


def test_demo_account_comes_from_the_seed() -> None:
    options = trading_options_from_cli([], ["USDT=5000"], None)
    (account,) = options.resolved_accounts(seed=7)
    assert (account.api_key, account.api_secret) == demo_credentials(7) != demo_credentials(8)
    assert account.spot == {"USDT": Decimal(5000)} and account.futures == {"USDT": Decimal(5000)}


def test_accounts_file(tmp_path: Path) -> None:
    path = tmp_path / "accounts.yaml"
    path.write_text(
        f"accounts:\n  - name: maker\n    api_key: {KEY}\n    api_secret: {SECRET}\n"
        "    spot: {USDT: 10, BTC: 0.5}\n    futures_fee_tier: 3\n"
        f"  - api_key: {'L' * 64}\n    api_secret: {SECRET}\n"
    )
    accounts = load_accounts_file(path)
    assert [a.name for a in accounts] == ["maker", "account2"]
    assert accounts[0].spot == {"USDT": Decimal(10), "BTC": Decimal("0.5")} and accounts[0].futures_fee_tier == 3
    options = trading_options_from_cli([], [], path)
    assert options.resolved_accounts(1)[1].spot == {"USDT": Decimal(100_000), "BTC": Decimal(1)}


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("accounts: 3\n", "expected a list"),
        (f"- api_key: {KEY}\n  api_secret: short\n", "api_secret"),
        (f"- api_key: {KEY}\n  api_secret: {SECRET}\n  colour: blue\n", "colour: unknown key"),
        (f"- api_key: {KEY}\n  api_secret: {SECRET}\n  spot: {{USDT: -1}}\n", "non-negative"),
        ("- [\n", "invalid YAML"),
    ],
)
def test_bad_accounts_file_is_one_error(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "accounts.yaml"
    path.write_text(content)
    with pytest.raises(ConfigurationError, match=needle):
        load_accounts_file(path)


@pytest.mark.parametrize(
    ("arguments", "needle"),
    [
        (["--account", "nokey"], "--account"),
        (["--balance", "moon:USDT=1"], "--balance"),
        (["--accounts-file", "missing.yaml"], "missing.yaml"),
    ],
)
def test_bad_trading_flags_are_one_line(arguments: list[str], needle: str) -> None:
    result = kestrel("sim", "serve", "--duration", "1", *arguments)
    assert_one_line_error(result, needle)
    assert result.returncode == 2


@pytest.mark.parametrize(
    ("accounts", "balances", "needle"),
    [
        ([f"{KEY}:short"], [], "--account"),
        ([f"{KEY}:{SECRET}", f"{KEY}:{SECRET}"], [], "share an API key"),
        ([], ["USDT"], "--balance"),
        ([], ["USDT=lots"], "not a number"),
        ([], ["USDT=-5"], "non-negative"),
        ([], ["usdt-x=5"], "not an asset name"),
    ],
)
def test_bad_trading_values_are_configuration_errors(accounts: list[str], balances: list[str], needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        trading_options_from_cli(accounts, balances, None)
