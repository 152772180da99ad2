"""`kestrel compare RUN_A RUN_B`: the differences between two runs' orders and fills."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kestrel.backtest.compare import compare_runs
from kestrel.core.errors import DataError


def compare_command(
    run_a: Annotated[Path, typer.Argument(help="A run directory (backtest or node)", show_default=False)],
    run_b: Annotated[Path, typer.Argument(help="Another run directory", show_default=False)],
    limit: Annotated[int, typer.Option("--limit", min=1, help="Differences to print at most")] = 50,
) -> None:
    """List every difference in orders and fills; exit 0 when there is none, 1 otherwise."""
    try:
        differences, counts = compare_runs(run_a, run_b)
    except DataError as error:  # like diff(1): 0 same, 1 different, 2 trouble
        raise typer.BadParameter(str(error)) from None
    if not differences:
        typer.echo(f"identical: {counts['orders']} orders, {counts['fills']} fills")
        return
    for difference in differences[:limit]:
        typer.echo(str(difference))
    hidden = len(differences) - limit
    typer.echo(f"{len(differences)} difference(s)" + (f" ({hidden} not shown; --limit)" if hidden > 0 else ""))
    raise typer.Exit(1)
