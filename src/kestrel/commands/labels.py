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


@app.command("fit-slippage")
def fit_slippage_command(
    raw: Annotated[list[str], typer.Option("--raw", help="Raw recording(s) with trades and quotes ('shared:' ok)")],
    out: Annotated[Path | None, typer.Option("--out", help="Write the fitted quantiles here (JSON)")] = None,
    notional: Annotated[float, typer.Option("--notional", min=1.0, help="Order size to quote (USDT)")] = 200.0,
) -> None:
    """Fit slippage quantiles (2.5 / 50 / 97.5 %) from replayed taker orders (R-LB-2)."""
    import json

    from kestrel.labels.costs import QUANTILES
    from kestrel.labels.slippage import fit_from_recordings

    fit = fit_from_recordings(raw)
    typer.echo(
        f"{fit.model.orders} taker orders; typical near-touch depth {fit.typical_depth_usdt:,.0f} USDT, "
        f"Kyle's λ {fit.typical_kyle_lambda:.4g} bps per 1M USDT"
    )
    for quantile in QUANTILES:
        a, b, c = fit.model.coefficients[quantile]
        typer.echo(
            f"q={quantile:<5} slippage_bps = {a:.4f} + {b:.4g}·participation + {c:.4g}·impact  "
            f"→ {fit.per_side_bps(quantile, notional):.4f} bps/side at {notional:g} USDT"
        )
    if out is not None:
        out.write_text(json.dumps(fit.to_dict(), indent=2) + "\n")
        typer.echo(f"wrote {out}")
