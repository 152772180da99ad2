"""`kestrel labels build`: triple-barrier and net-of-cost labels of the configured bar series."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kestrel.config.loading import load_config

app = typer.Typer(help="Build labels net of costs.", no_args_is_help=True)


@app.command("build")
def build(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML configuration", show_default=False)],
    out: Annotated[Path | None, typer.Option("--out", help="Folder (default: <data_dir>/labels)")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar on stderr")] = True,
) -> None:
    """Labels of every configured symbol → Parquet, one file per symbol."""
    import math

    import polars as pl
    from tqdm import tqdm

    from kestrel.features.bars import compute_bar_features
    from kestrel.features.table import bar_spec_from_config
    from kestrel.labels.build import build_bar_labels
    from kestrel.research.klines import barrier_spec_from_config, cost_model_from_config, load_kline_data

    settings = load_config(config)
    data = load_kline_data(settings)
    spec = bar_spec_from_config(settings, data.interval_s)
    barrier = barrier_spec_from_config(settings)
    costs = cost_model_from_config(settings)
    root = (out if out is not None else settings.storage.data_dir / "labels") / f"bars_{data.interval_s}s"
    for item in tqdm(data.series, desc="labels", disable=not progress, leave=False):
        atr = compute_bar_features(item.bars, spec)[f"atr_{spec.atr_period}"].fill_null(math.nan).to_numpy()
        labels = build_bar_labels(
            item.bars, atr, data.interval_s, barrier, costs, settings.research.costs.order_notional_usdt, item.funding
        ).with_columns(pl.lit(item.symbol).alias("symbol"))
        folder = root / f"symbol={item.symbol}"
        folder.mkdir(parents=True, exist_ok=True)
        labels.write_parquet(folder / "part-0.parquet", compression="zstd")
        labelled = labels.filter(pl.col("y_up").is_not_null())
        share = float(labelled["y_up"].to_numpy().mean()) if labelled.height else math.nan
        typer.echo(
            f"{item.symbol}: {labelled.height} labelled rows (upper barrier first, net of costs: {share:.1%}) "
            f"→ {folder / 'part-0.parquet'}"
        )
