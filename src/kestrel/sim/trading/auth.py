"""Request authentication as the exchange does it (spec §4.2, §4.3).

- Parameters come from the query string and the `application/x-www-form-urlencoded` body; the query
  wins when a name appears in both.
- USER_STREAM endpoints need a known `X-MBX-APIKEY`; USER_DATA and TRADE also a `signature`: the
  HMAC-SHA256 hex digest (any case) of the query string concatenated directly with the body, both as
  sent, without the `signature` parameter itself. Our client's `sign` computes it, so client and
  server share one implementation.
- `timestamp` (ms) is mandatory on signed requests; it must be less than server time + 1000 ms and no
  older than `recvWindow` (default 5000 ms; spot at most 60000) or the request fails with -1021.

Error codes and HTTP statuses: a missing or malformed key -2014 and an unknown key -2015 (HTTP 401),
a bad signature -1022, a bad timestamp -1021 (HTTP 400).
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qsl

from aiohttp import web

from kestrel.binance.http.endpoints import Endpoint, Security
from kestrel.binance.http.signing import sign
from kestrel.core.enums import Market
from kestrel.sim.rest import BinanceError
from kestrel.sim.trading.options import SimAccount

_KEY_FORMAT = re.compile(r"^[A-Za-z0-9]{1,128}$")
DEFAULT_RECV_WINDOW_MS = 5000


@dataclass(frozen=True, slots=True)
class RawRequest:
    """A request's parameters (query wins) and the exact text that was signed."""

    params: dict[str, str]
    query: str
    body: str
    api_key: str | None


async def read_request(request: web.Request) -> RawRequest:
    query = request.raw_path.partition("?")[2]
    body = ""
    if request.can_read_body:
        body = (await request.read()).decode("utf-8", errors="replace")
    params: dict[str, str] = {}
    if body:
        params.update(parse_qsl(body, keep_blank_values=True))
    params.update(parse_qsl(query, keep_blank_values=True))
    return RawRequest(params, query, body, request.headers.get("X-MBX-APIKEY"))


def _without_signature(text: str) -> str:
    if "signature=" not in text:
        return text
    return "&".join(part for part in text.split("&") if not part.startswith("signature="))


def signed_payload(query: str, body: str) -> str:
    """What the client signed: the query directly followed by the body, minus `signature`."""
    return _without_signature(query) + _without_signature(body)


class Credentials:
    """API key → account. Secrets are compared in constant time."""

    def __init__(self, accounts: list[SimAccount]) -> None:
        self._by_key = {account.api_key: account for account in accounts}

    def account(self, api_key: str | None) -> SimAccount:
        if not api_key or not _KEY_FORMAT.match(api_key):
            raise BinanceError(-2014, "API-key format invalid.", status=401)
        account = self._by_key.get(api_key)
        if account is None:
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", status=401)
        return account

    def by_key(self, api_key: str) -> SimAccount | None:
        return self._by_key.get(api_key)


def _mandatory(name: str) -> BinanceError:
    return BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def check_signature(secret: str, payload: str, signature: str | None) -> None:
    if not signature:
        raise _mandatory("signature")
    expected = sign(secret, payload)
    if not hmac.compare_digest(expected, signature.lower()):
        raise BinanceError(-1022, "Signature for this request is not valid.")


def check_timestamp(params: dict[str, str], server_ms: int, market: Market, max_recv_window_ms: int) -> None:
    """The recvWindow rule (spec §4.3)."""
    raw = params.get("timestamp")
    if not raw:
        raise _mandatory("timestamp")
    if not raw.isdigit() or len(raw) > 20:
        raise BinanceError(-1100, "Illegal characters found in parameter 'timestamp'; legal range is '^[0-9]{1,20}$'.")
    timestamp = int(raw)
    if timestamp > 10**14:  # spot accepts microseconds
        timestamp //= 1000
    window = Decimal(DEFAULT_RECV_WINDOW_MS)
    raw_window = params.get("recvWindow")
    if raw_window:
        try:
            window = Decimal(raw_window)
        except InvalidOperation:
            window = Decimal(-1)
        if not window.is_finite() or window <= 0:
            raise BinanceError(-1100, "Illegal characters found in parameter 'recvWindow'.")
        if market is Market.SPOT and window > max_recv_window_ms:
            raise BinanceError(-1131, f"recvWindow must be less than {max_recv_window_ms}.")
    if timestamp >= server_ms + 1000:
        raise BinanceError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    if server_ms - timestamp > window:
        raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")


def authenticate(
    endpoint: Endpoint,
    raw: RawRequest,
    credentials: Credentials,
    server_ms: int,
    market: Market,
    max_recv_window_ms: int,
) -> SimAccount | None:
    """The account a request acts for (None for unauthenticated endpoints), or the exchange's error."""
    if endpoint.security is Security.NONE:
        return None
    account = credentials.account(raw.api_key)
    if endpoint.signed:
        check_signature(account.api_secret, signed_payload(raw.query, raw.body), raw.params.get("signature"))
        check_timestamp(raw.params, server_ms, market, max_recv_window_ms)
    return account
