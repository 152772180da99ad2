"""`BinanceVenue` settings (built from `venue` config) and its reconciliation snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from kestrel.binance.userdata import UserStreamSettings
from kestrel.config.models import VenueConfig
from kestrel.core.enums import Market
from kestrel.core.venue import Balance, OrderSnapshot, PositionSnapshot


@dataclass(frozen=True)
class BinanceVenueSettings:
    """Where the venue is and how it behaves. `from_config` maps the `venue` config section."""

    spot_rest_url: str
    futures_rest_url: str
    spot_ws_url: str
    spot_ws_api_url: str
    futures_ws_url: str
    api_key: str | None
    api_secret: str | None
    markets: tuple[Market, ...] = (Market.SPOT, Market.FUTURES)
    account_id: str = "binance"
    recv_window_ms: int = 5000
    request_timeout_ms: int = 10_000
    spot_user_stream: Literal["ws_api", "listen_key"] = "ws_api"
    user_stream: UserStreamSettings = field(default_factory=UserStreamSettings)
    silence_s: float = 30.0  # no user event this long while orders are open ⇒ poll by REST
    poll_interval_s: float = 5.0
    fill_grace_s: float = 1.0  # a report ahead of its fills waits this long for the stream's fills
    fill_sync_attempts: int = 6
    resolve_initial_delay_s: float = 0.25
    resolve_max_delay_s: float = 4.0
    unknown_deadline_margin_s: float = 5.0
    unknown_floor_s: float = 10.0  # spot's own give-up time for a request (-1007 after 10 s)
    start_timeout_s: float = 15.0
    keep_finished_orders: int = 10_000  # finished orders kept in the view (older ones are forgotten)
    client_id_tag: str = "v"  # generated client ids hash `<tag><start ns>-<n>`: unique per session
    spot_weight_per_minute: int = 6000
    futures_weight_per_minute: int = 2400
    rate_limit_safety: float = 0.9  # share of each budget window we use
    shared_budget_redis_url: str | None = None  # budgets shared with other processes on this key

    @property
    def unknown_deadline_s(self) -> float:
        """How long an order with an unknown outcome may still appear: the exchange refuses a request
        older than recvWindow (futures re-checks it in the matching engine, -5028) and spot gives up
        after 10 s (-1007); past that plus a margin, an order it does not know was never placed."""
        return max(self.recv_window_ms / 1000, self.unknown_floor_s) + self.unknown_deadline_margin_s

    @classmethod
    def from_config(
        cls,
        venue: VenueConfig,
        markets: tuple[Market, ...] = (Market.SPOT, Market.FUTURES),
        account_id: str = "binance",
    ) -> BinanceVenueSettings:
        return cls(
            spot_rest_url=venue.spot.rest_url,
            futures_rest_url=venue.futures.rest_url,
            spot_ws_url=venue.spot.ws_url,
            spot_ws_api_url=venue.spot.ws_api_url,
            futures_ws_url=venue.futures.ws_url,
            api_key=venue.api_key.get_secret_value() if venue.api_key else None,
            api_secret=venue.api_secret.get_secret_value() if venue.api_secret else None,
            markets=markets,
            account_id=account_id,
            recv_window_ms=venue.recv_window_ms,
            request_timeout_ms=venue.request_timeout_ms,
            spot_user_stream=venue.spot_user_stream,
            user_stream=UserStreamSettings(
                keepalive_interval_s=venue.listen_key_keepalive_s, futures_route=venue.futures_user_stream_route
            ),
            silence_s=venue.user_stream_silence_s,
            poll_interval_s=venue.rest_poll_interval_s,
            spot_weight_per_minute=venue.spot_weight_per_minute,
            futures_weight_per_minute=venue.futures_weight_per_minute,
            rate_limit_safety=venue.rate_limit_safety,
            shared_budget_redis_url=(
                venue.shared_budget_redis_url.get_secret_value() if venue.shared_budget_redis_url else None
            ),
        )


@dataclass(frozen=True, slots=True)
class VenueSnapshot:
    """The exchange's side of a reconciliation, read at `ts` (core types; the reconciler's
    `OrderReport` / `PositionReport` are built from these by the node, which sits above both)."""

    open_orders: tuple[OrderSnapshot, ...]
    queried_orders: tuple[OrderSnapshot, ...]
    positions: tuple[PositionSnapshot, ...]
    balances: tuple[Balance, ...]
    ts: int
