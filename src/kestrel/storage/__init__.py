"""Storage: the market-data recorder (Parquet), the catalog (DuckDB), the Redis hot cache and streams,
and the trading ledger."""
