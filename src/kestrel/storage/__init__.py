"""Storage: the recorder (Parquet), the catalog (DuckDB), caches, and the trading ledger."""
