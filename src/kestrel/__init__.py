"""Kestrel: automated quantitative trading for Binance spot and USDT-M perpetual futures."""

__version__ = "0.1.0"
