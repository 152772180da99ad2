"""Recorded market data back as an ordered event stream."""
