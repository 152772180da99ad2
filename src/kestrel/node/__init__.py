"""The trading node: the live kernel that runs a strategy in paper or live mode (issue 6).

`build_node` wires it from configuration in one place; backtest, paper and live differ only in what is
injected (clock, market-data source, venue).
"""

from kestrel.node.kernel import NodeSummary, TradingNode, VenueKind

__all__ = ["NodeSummary", "TradingNode", "VenueKind"]
