"""THE matching engine: books, queue position, latency, fees, funding, margin, liquidation, accounts.

One engine serves backtests, paper trading and the local Binance simulator (ARCHITECTURE.md §1):
`MatchingEngine` is pure and synchronous; `SimVenue` wraps it behind the `Venue` interface with
latency. The fill rules are documented in docs/matching.md.
"""
