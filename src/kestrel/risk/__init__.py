"""Risk: pre-trade limits (R-RK-1/2), budgets, circuit breakers and the kill switch.

Rejections are events (`RiskRejection`), never exceptions: the node publishes and records them.
"""

from kestrel.risk.limits import EntryRequest, RiskDecision, RiskEngine, RiskRejection, TradeResult

__all__ = ["EntryRequest", "RiskDecision", "RiskEngine", "RiskRejection", "TradeResult"]
