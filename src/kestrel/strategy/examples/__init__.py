"""Example strategies shipped with Kestrel, by name (`kestrel backtest --strategy NAME`)."""

from __future__ import annotations

EXAMPLES = {
    "sma_cross": "kestrel.strategy.examples.sma_cross:SmaCross",
    "market_maker": "kestrel.strategy.examples.market_maker:TopOfBookMaker",
}
