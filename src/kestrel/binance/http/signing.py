"""HMAC-SHA256 request signing (spec §4.3).

The signed payload is the query string concatenated directly with the request body; we send every
parameter in the query string (allowed for POST/PUT/DELETE, and the query wins on duplicates), so the
payload is simply the encoded query, and `signature` goes last as futures requires.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from decimal import Decimal
from urllib.parse import urlencode

from kestrel.core.numbers import format_decimal


def sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def encode_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format_decimal(value)
    if isinstance(value, float):
        raise TypeError("floats are not sent to the exchange: convert through Instrument to Decimal")
    return str(value)


def encode_params(params: Mapping[str, object]) -> str:
    """Parameters in their given order, None dropped, values in the exchange's text form."""
    return urlencode([(key, encode_value(value)) for key, value in params.items() if value is not None])


def signed_query(params: Mapping[str, object], secret: str, timestamp_ms: int, recv_window_ms: int) -> str:
    query = encode_params({**params, "recvWindow": recv_window_ms, "timestamp": timestamp_ms})
    return f"{query}&signature={sign(secret, query)}"
