"""Execution: order router (maker→taker, TWAP, OCO), order state, reconciler, transfers."""
