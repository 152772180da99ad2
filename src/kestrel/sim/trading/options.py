"""Options of the simulator's trading half: accounts, balances, user streams, order-rate limits.

Accounts come from `TradingOptions.accounts` (Python), `kestrel sim serve --account KEY:SECRET
--balance USDT=10000` or an accounts YAML file (`--accounts-file`). Without any, one demo account is
made whose key and secret derive from the simulator's seed (so a run is reproducible) and are printed
in the start-up line: they are for local use only and open nothing but this simulator.

Durations (listenKey validity) follow the simulator's `time_scale` like every protocol duration.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kestrel.core.errors import ConfigurationError

_KEY = re.compile(r"^[A-Za-z0-9]{8,128}$")
_ASSET = re.compile(r"^[A-Z0-9]{2,20}$")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _balances(value: Mapping[str, Any] | None) -> dict[str, Decimal]:
    result: dict[str, Decimal] = {}
    for asset, amount in (value or {}).items():
        name = str(asset).upper()
        if not _ASSET.match(name):
            raise ValueError(f"asset {asset!r} is not an asset name")
        try:
            number = Decimal(str(amount))
        except InvalidOperation:
            raise ValueError(f"balance of {name} is not a number: {amount!r}") from None
        if not number.is_finite() or number < 0:
            raise ValueError(f"balance of {name} must be a non-negative number, got {amount!r}")
        result[name] = number
    return result


class SimAccount(_Frozen):
    """One simulated exchange account: its API key pair, starting balances and fee tiers."""

    name: str = Field("demo", min_length=1, max_length=64, description="Label in stats and logs")
    api_key: str = Field(description="X-MBX-APIKEY value (8-128 letters and digits)")
    api_secret: str = Field(description="HMAC-SHA256 secret (8-128 letters and digits)")
    spot: dict[str, Decimal] = Field(default_factory=dict, description="Spot balances (asset -> amount)")
    futures: dict[str, Decimal] = Field(default_factory=dict, description="USD-M wallet (asset -> amount)")
    spot_fee_tier: int = Field(0, ge=0, le=9, description="Spot VIP tier (maker/taker rates)")
    futures_fee_tier: int = Field(0, ge=0, le=9, description="USD-M VIP tier")

    @field_validator("api_key", "api_secret")
    @classmethod
    def _key(cls, value: str) -> str:
        if not _KEY.match(value):
            raise ValueError("must be 8-128 letters and digits")
        return value

    @field_validator("spot", "futures", mode="before")
    @classmethod
    def _amounts(cls, value: Mapping[str, Any] | None) -> dict[str, Decimal]:
        return _balances(value)


class OrderRateLimits(_Frozen):
    """Order-count limits per account (spec §4.4; read from exchangeInfo on the live exchange)."""

    spot_per_10s: int = Field(100, ge=1, description="Spot orders per 10 seconds (X-MBX-ORDER-COUNT-10S)")
    spot_per_day: int = Field(200_000, ge=1, description="Spot orders per day (X-MBX-ORDER-COUNT-1D)")
    futures_per_10s: int = Field(300, ge=1, description="USD-M orders per 10 seconds (X-MBX-ORDER-COUNT-10S)")
    futures_per_minute: int = Field(1200, ge=1, description="USD-M orders per minute (X-MBX-ORDER-COUNT-1M)")


class TradingOptions(_Frozen):
    """The trading half of the simulator (signed REST, user data streams) on the matching engine."""

    enabled: bool = Field(True, description="Serve the trading API (False: market data only)")
    accounts: list[SimAccount] = Field(default_factory=list, description="Accounts; empty = one demo account")
    default_spot_balances: dict[str, Decimal] = Field(
        default_factory=lambda: {"USDT": Decimal(100_000), "BTC": Decimal(1)},
        description="Spot balances of accounts that give none",
    )
    default_futures_balances: dict[str, Decimal] = Field(
        default_factory=lambda: {"USDT": Decimal(100_000)}, description="USD-M wallet of accounts that give none"
    )
    spot_listen_key: bool = Field(
        True,
        description="Serve the legacy spot listenKey (POST /api/v3/userDataStream, /ws/<key>); Binance retired "
        "it on 2026-02-20, the WS-API userDataStream.subscribe path is always served",
    )
    listen_key_validity_s: float = Field(3600.0, gt=0, description="listenKey lifetime without keepalive")
    spot_max_recv_window_ms: int = Field(60_000, ge=1, description="Largest recvWindow spot accepts (-1131)")
    order_limits: OrderRateLimits = OrderRateLimits()
    book_window_ticks: int = Field(
        8192, ge=1024, le=1 << 20, description="Engine book window per symbol, in ticks (memory per symbol)"
    )
    queue_model: str = Field("power", description="Queue position model of resting orders (risk_averse/power/log)")
    default_leverage: int = Field(20, ge=1, le=125, description="Leverage of a symbol never set by the account")

    @field_validator("default_spot_balances", "default_futures_balances", mode="before")
    @classmethod
    def _amounts(cls, value: Mapping[str, Any] | None) -> dict[str, Decimal]:
        return _balances(value)

    @model_validator(mode="after")
    def _unique_keys(self) -> TradingOptions:
        keys = [account.api_key for account in self.accounts]
        if len(set(keys)) != len(keys):
            raise ValueError("two accounts share an API key")
        names = [account.name for account in self.accounts]
        if len(set(names)) != len(names):
            raise ValueError("two accounts share a name")
        return self

    def resolved_accounts(self, seed: int) -> list[SimAccount]:
        """The accounts to open: the configured ones (missing balances filled with the defaults), or
        the seed's demo account."""
        if not self.accounts:
            key, secret = demo_credentials(seed)
            return [
                SimAccount(
                    name="demo",
                    api_key=key,
                    api_secret=secret,
                    spot=dict(self.default_spot_balances),
                    futures=dict(self.default_futures_balances),
                )
            ]
        return [
            account.model_copy(
                update={
                    "spot": account.spot or dict(self.default_spot_balances),
                    "futures": account.futures or dict(self.default_futures_balances),
                }
            )
            for account in self.accounts
        ]


def demo_credentials(seed: int) -> tuple[str, str]:
    """A 64-character key and secret derived from the seed (reproducible, local use only)."""
    key = hashlib.sha256(f"kestrel-sim:{seed}:api-key".encode()).hexdigest()
    secret = hashlib.sha256(f"kestrel-sim:{seed}:api-secret".encode()).hexdigest()
    return key, secret


# ---- CLI and file helpers ------------------------------------------------------------------------
def parse_account(text: str, index: int) -> dict[str, Any]:
    """`KEY:SECRET` or `NAME=KEY:SECRET` (a `--account` value)."""
    name = f"account{index + 1}"
    if "=" in text:
        name, _, text = text.partition("=")
    key, separator, secret = text.partition(":")
    if not separator or not _KEY.match(key) or not _KEY.match(secret):
        raise ConfigurationError(
            f"--account: expected KEY:SECRET or NAME=KEY:SECRET (8-128 letters and digits each), got {text!r}"
        )
    return {"name": name.strip() or f"account{index + 1}", "api_key": key, "api_secret": secret}


def parse_balances(items: Iterable[str]) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """`--balance` values: `ASSET=AMOUNT` (both markets), `spot:ASSET=AMOUNT` or `futures:ASSET=AMOUNT`."""
    spot: dict[str, Decimal] = {}
    futures: dict[str, Decimal] = {}
    for item in items:
        market, _, assignment = item.rpartition(":") if ":" in item else ("", "", item)
        asset, separator, amount = assignment.partition("=")
        if market not in ("", "spot", "futures") or not separator:
            raise ConfigurationError(f"--balance: expected [spot:|futures:]ASSET=AMOUNT, got {item!r}")
        try:
            value = _balances({asset: amount})
        except ValueError as exc:
            raise ConfigurationError(f"--balance: {exc}") from None
        if market in ("", "spot"):
            spot.update(value)
        if market in ("", "futures"):
            futures.update(value)
    return spot, futures


def _problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
    return f"{where}: {message}"


def load_accounts_file(path: Path) -> list[SimAccount]:
    """Accounts from YAML: a list (or `accounts:` list) of {name, api_key, api_secret, spot, futures, ...}."""
    if not path.exists():
        raise ConfigurationError(f"{path}: no such file")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        raise ConfigurationError(f"{path}: invalid YAML") from None
    if isinstance(document, Mapping):
        document = document.get("accounts")
    if not isinstance(document, list) or not document:
        raise ConfigurationError(f"{path}: expected a list of accounts (or an 'accounts:' list)")
    accounts = []
    for number, entry in enumerate(document, 1):
        if not isinstance(entry, Mapping):
            raise ConfigurationError(f"{path}: account {number} is not a mapping")
        values = {"name": f"account{number}", **entry}
        try:
            accounts.append(SimAccount.model_validate(values))
        except ValidationError as exc:
            raise ConfigurationError(f"{path}: account {number}: {_problem(exc)}") from None
    return accounts


def trading_options_from_cli(
    accounts: Iterable[str],
    balances: Iterable[str],
    accounts_file: Path | None,
    spot_listen_key: bool = True,
) -> TradingOptions:
    """TradingOptions from `kestrel sim serve` flags; every problem is one ConfigurationError line."""
    spot, futures = parse_balances(balances)
    configured: list[SimAccount] = load_accounts_file(accounts_file) if accounts_file is not None else []
    try:
        configured.extend(
            SimAccount.model_validate({**parse_account(text, len(configured) + n), "spot": spot, "futures": futures})
            for n, text in enumerate(accounts)
        )
        values: dict[str, Any] = {"accounts": configured, "spot_listen_key": spot_listen_key}
        if spot:
            values["default_spot_balances"] = spot
        if futures:
            values["default_futures_balances"] = futures
        return TradingOptions.model_validate(values)
    except ValidationError as exc:
        raise ConfigurationError(f"trading: {_problem(exc)}") from None
