"""Strategies: the base class every strategy derives from, and the shipped examples."""
