"""CLI command groups, one module per area (sim, data, ingest, backtest, research ...).

Each module defines a `typer.Typer()` (or plain command functions) that `kestrel.cli` registers, so the
areas grow without editing one shared file. User errors are raised as `KestrelError` subclasses
(`DataError`, `ConfigurationError` ...); `kestrel.cli.main` turns them into one line and an exit code.
"""
