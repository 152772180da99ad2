"""L0 gate (R-SE-1): hard preconditions before any rule or model is consulted; failing ⇒ "skip".

Every failed check is reported (not only the first), so a skipped signal says all of why.
"""

from __future__ import annotations

from dataclasses import dataclass

from kestrel.config.models import RiskConfig
from kestrel.core.enums import Market


@dataclass(frozen=True, slots=True)
class GateInputs:
    market: Market
    spread_bps: float
    depth_top1_usdt: float
    funding_next: float | None  # futures only; None on spot
    proposed_margin_usdt: float  # futures margin, or spot notional
    spot_notional_in_use_usdt: float
    futures_margin_in_use_usdt: float
    open_entries_in_market: int


@dataclass(frozen=True, slots=True)
class GateResult:
    passed: bool
    reasons: tuple[str, ...]


def evaluate_gate(inputs: GateInputs, limits: RiskConfig) -> GateResult:
    reasons: list[str] = []
    if inputs.funding_next is not None and abs(inputs.funding_next) > limits.max_abs_funding_rate:
        reasons.append(f"|funding_next| {abs(inputs.funding_next):.6f} > {limits.max_abs_funding_rate}")
    if not inputs.spread_bps <= limits.max_spread_bps:  # NaN spread (empty book) fails too
        reasons.append(f"spread_bps {inputs.spread_bps:.2f} > {limits.max_spread_bps}")
    if not inputs.depth_top1_usdt >= limits.min_depth_top1_usdt:
        reasons.append(f"depth_top1_usdt {inputs.depth_top1_usdt:.0f} < {limits.min_depth_top1_usdt}")
    if inputs.market is Market.SPOT:
        total = inputs.spot_notional_in_use_usdt + inputs.proposed_margin_usdt
        if total > limits.spot_notional_budget_usdt:
            reasons.append(f"spot notional {total:.2f} > budget {limits.spot_notional_budget_usdt}")
    else:
        total = inputs.futures_margin_in_use_usdt + inputs.proposed_margin_usdt
        if total > limits.futures_margin_budget_usdt:
            reasons.append(f"futures margin {total:.2f} > budget {limits.futures_margin_budget_usdt}")
    if inputs.open_entries_in_market >= limits.max_concurrent_entries_per_market:
        reasons.append(
            f"{inputs.open_entries_in_market} open entries in {inputs.market.value} "
            f"(max {limits.max_concurrent_entries_per_market})"
        )
    return GateResult(not reasons, tuple(reasons))
