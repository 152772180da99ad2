"""Storage: the Parquet recorder, the DuckDB catalog, the Redis hot cache and streams."""
