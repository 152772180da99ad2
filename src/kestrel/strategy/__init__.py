"""Strategy engine: L0 gate, L1 rule DSL, L2 model score, sizing → Intent; and the strategy API."""
