"""`kestrel features build` and `kestrel features check-lookahead`."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Any

import typer

from kestrel.config.loading import load_config
from kestrel.core.errors import ConfigurationError

app = typer.Typer(help="Build features and check them for lookahead.", no_args_is_help=True)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="YAML configuration", show_default=False)]


def _load_plugin(text: str) -> Any:
    module_name, sep, function_name = text.partition(":")
    if not sep or not module_name or not function_name:
        raise ConfigurationError(f"--plugin {text!r}: expected 'module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"--plugin {text!r}: cannot import {module_name} ({exc})") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConfigurationError(f"--plugin {text!r}: {module_name} has no function {function_name}")
    return function


@app.command("build")
def build(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML configuration")] = None,
    raw: Annotated[
        list[Path] | None,
        typer.Option("--raw", help="Raw recording(s) for microstructure features (instead of the bars)"),
    ] = None,
    sample_ms: Annotated[
        int, typer.Option("--sample-ms", min=0, help="Microstructure rows every N ms (0 = one per event)")
    ] = 100,
    out: Annotated[Path | None, typer.Option("--out", help="Folder (default: <data_dir>/features)")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar on stderr")] = True,
) -> None:
    """Bar features of every configured symbol, or microstructure features of raw recordings (--raw),
    → Parquet, one file per symbol (the batch path)."""
    from kestrel.config.loading import embedded_defaults

    if config is None and not raw:
        raise ConfigurationError("give --config (bar features) or --raw (microstructure features)")
    settings = load_config(config) if config is not None else embedded_defaults()
    root = out if out is not None else settings.storage.data_dir / "features"
    if raw:
        _build_micro(settings, raw, sample_ms, root, progress)
    else:
        _build_bars(settings, root, progress)


def _build_bars(settings: Any, root: Path, progress: bool) -> None:
    from tqdm import tqdm

    from kestrel.features.table import bar_spec_from_config, model_feature_table
    from kestrel.research.klines import load_kline_data

    data = load_kline_data(settings)
    spec = bar_spec_from_config(settings, data.interval_s)
    table, names = model_feature_table(
        data.series,
        spec,
        settings.research.bars.correlation_window,
        settings.feature.normalisation,
        settings.feature.normalisation_window,
    )
    folder_root = root / f"bars_{data.interval_s}s"
    for item in tqdm(data.series, desc="features", disable=not progress, leave=False):
        folder = folder_root / f"symbol={item.symbol}"
        folder.mkdir(parents=True, exist_ok=True)
        part = table.filter(table["symbol"] == item.symbol)
        part.write_parquet(folder / "part-0.parquet", compression="zstd")
        typer.echo(f"{item.symbol}: {part.height} rows × {len(names)} model features → {folder / 'part-0.parquet'}")


def _build_micro(settings: Any, paths: list[Path], sample_ms: int, root: Path, progress: bool) -> None:
    from collections import defaultdict

    from tqdm import tqdm

    from kestrel.features.micro import compute_micro_features, events_table, micro_spec_from_config
    from kestrel.features.raw_events import frames_to_events
    from kestrel.replay.raw import merge_by_local_time, read_raw

    spec = micro_spec_from_config(settings.feature)
    frames = merge_by_local_time([read_raw(path) for path in paths])
    by_symbol: dict[tuple[Any, str], list[Any]] = defaultdict(list)
    for event in tqdm(frames_to_events(frames), desc="reading", disable=not progress, leave=False, unit="event"):
        by_symbol[(event.market, event.symbol)].append(event)
    if not by_symbol:
        raise ConfigurationError("the recordings hold no event of a Kestrel market (spot or USD-M)")
    for (market, symbol), events in tqdm(by_symbol.items(), desc="features", disable=not progress, leave=False):
        folder = root / "micro" / str(market) / f"symbol={symbol}"
        folder.mkdir(parents=True, exist_ok=True)
        table = events_table(events, market)
        table.write_parquet(folder / "events.parquet", compression="zstd")
        features = compute_micro_features(table, spec, sample_ms * 1_000_000)
        features.write_parquet(folder / "features.parquet", compression="zstd")
        typer.echo(
            f"{market} {symbol}: {len(events)} events, {features.height} rows × {len(spec.names)} features "
            f"→ {folder / 'features.parquet'}"
        )


@app.command("check-lookahead")
def check_lookahead_command(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML configuration")] = None,
    raw: Annotated[
        list[Path] | None, typer.Option("--raw", help="Check the microstructure batch path on raw recording(s)")
    ] = None,
    cuts: Annotated[int, typer.Option("--cuts", min=1, max=1000, help="Number of truncation points")] = 12,
    plugin: Annotated[
        str | None, typer.Option("--plugin", help="Extra user features to check, as module:function(bars)")
    ] = None,
    last_bars: Annotated[
        int | None, typer.Option("--last-bars", min=100, help="Check only each symbol's last N bars")
    ] = 4000,
) -> None:
    """Prove every feature at t uses nothing after t (recomputation on truncated data); exit 1 naming
    each feature that does. Bar features of --config, or microstructure features of --raw recordings."""
    from kestrel.config.loading import embedded_defaults
    from kestrel.features.lookahead import LookaheadReport

    if config is None and not raw:
        raise ConfigurationError("give --config (bar features) or --raw (microstructure features)")
    settings = load_config(config) if config is not None else embedded_defaults()
    report: LookaheadReport
    if raw:
        report = _micro_lookahead(settings, raw, cuts)
    else:
        if last_bars is not None:
            data_section = settings.research.data.model_copy(update={"last_bars": last_bars})
            research = settings.research.model_copy(update={"data": data_section})
            settings = settings.model_copy(update={"research": research})
        report = _bar_lookahead(settings, cuts, plugin)
    for name, violation in sorted(report.violations.items()):
        typer.echo(
            f"{name}: at {violation.key} the value {violation.full_value} becomes {violation.truncated_value} "
            f"when the data stops at {violation.cut_ns}",
            err=True,
        )
    typer.echo(report.summary())
    if not report.passed:
        raise typer.Exit(1)


def _bar_lookahead(settings: Any, cuts: int, plugin: str | None) -> Any:
    import numpy as np

    from kestrel.features.lookahead import check_lookahead, cut_times
    from kestrel.features.table import bar_spec_from_config, kline_feature_computation
    from kestrel.research.klines import load_kline_data

    data = load_kline_data(settings)
    spec = bar_spec_from_config(settings, data.interval_s)
    compute = kline_feature_computation(
        data.series,
        spec,
        settings.research.bars.correlation_window,
        settings.feature.normalisation,
        settings.feature.normalisation_window,
        _load_plugin(plugin) if plugin else None,
    )
    times = np.concatenate([item.bars["open_time_ns"].to_numpy() + data.interval_s * 10**9 for item in data.series])
    return check_lookahead(compute, cut_times(times, cuts))


def _micro_lookahead(settings: Any, paths: list[Path], cuts: int) -> Any:
    import polars as pl

    from kestrel.features.lookahead import check_lookahead, cut_times
    from kestrel.features.micro import compute_micro_features, events_table, micro_spec_from_config
    from kestrel.features.raw_events import frames_to_events
    from kestrel.replay.raw import merge_by_local_time, read_raw

    spec = micro_spec_from_config(settings.feature)
    events = list(frames_to_events(merge_by_local_time([read_raw(path) for path in paths])))
    if not events:
        raise ConfigurationError("the recordings hold no event of a Kestrel market (spot or USD-M)")
    symbol = events[0].symbol
    table = events_table([event for event in events if event.symbol == symbol], events[0].market)

    def compute(until: int | None) -> pl.DataFrame:
        part = table if until is None else table.filter(pl.col("ts_init") <= until)
        return compute_micro_features(part, spec)

    return check_lookahead(compute, cut_times(table["ts_init"].to_numpy(), cuts), keys=("ts", "row"))
