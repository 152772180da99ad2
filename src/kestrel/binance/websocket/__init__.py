"""Binance WebSocket market streams: frame decoding, the sharded stream client."""
