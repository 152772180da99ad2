"""Portfolio: positions and PnL, and the position manager (R-PM-1)."""
