"""Wire schemas: Binance field names in, domain types out (`parse_*`)."""
