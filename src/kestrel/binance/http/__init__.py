"""Binance REST: signing, request weights and order counts, errors, the async client."""
