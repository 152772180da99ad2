"""The exception family. Each class says what the operator (or calling code) must do.

- ConfigurationError: stop and fix the configuration; retrying cannot help.
- TemporaryError / RateLimited: retry later through the one retry helper, with backoff.
- InvalidOrderError: the order breaks an exchange rule; fix the order, do not resend it as is.
- InsufficientFunds: reduce size or move funds.
- StrategyError: user strategy code raised; the node isolates it.
"""

from __future__ import annotations


class KestrelError(Exception):
    """Base of every error Kestrel raises on purpose."""


class ConfigurationError(KestrelError):
    """The configuration is wrong. Stop and fix it."""


class DataError(KestrelError):
    """Input data is missing, malformed or inconsistent."""


class TemporaryError(KestrelError):
    """A transient fault (network, 5xx, timeout). Retry with backoff."""


class RateLimited(TemporaryError):
    """The venue asked us to slow down (HTTP 429) or banned us (HTTP 418).

    `retry_after_ms` is how long to wait before the next request; `banned` is True for 418.
    """

    def __init__(self, message: str, retry_after_ms: int, banned: bool = False) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms
        self.banned = banned


class InvalidOrderError(KestrelError):
    """The order violates an exchange rule. `code` is the Binance error code where one applies."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class InsufficientFunds(InvalidOrderError):
    """Not enough balance or margin for the order."""


class StrategyError(KestrelError):
    """User strategy code raised; raised from the safe wrapper around strategy callbacks."""
