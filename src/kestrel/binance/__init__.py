"""The real venue: Binance wire protocol (REST, WebSocket streams, user data), spot and USDT-M futures."""
