"""The backtest driver (replay + SimClock + SimVenue + strategy), its reports and the bar fast path."""
