"""The feed: discovery, shard plan, normalisation, sequence and quality audit, publishing (R-MD-*)."""
