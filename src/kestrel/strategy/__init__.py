"""Strategies: the base class every strategy derives from and the shipped examples; the strategy
engine's decision steps (L0 gate, L1 rule DSL, L2 model score, sizing → Intent)."""
