"""`kestrel data ...`: inspect, query, import, replay and compact market-data recordings."""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer

from kestrel.core.errors import DataError

app = typer.Typer(help="Market-data recordings: info, query, import-raw, replay, compact.", no_args_is_help=True)

RecordingPath = Annotated[Path, typer.Argument(help="Recording directory (the --record DIR of `kestrel ingest`)")]


def _parse_time(value: str | None, option: str) -> int | None:
    """ISO 8601 (UTC when no zone is given) or integer nanoseconds since the epoch."""
    if value is None:
        return None
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither ISO 8601 nor nanoseconds", param_hint=option) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000) * 1_000


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [item.strip() for item in value.split(",") if item.strip()]
    return items or None


def _print_info(info: dict[str, Any]) -> None:
    typer.echo(f"recording {info['path']}")
    symbols = info["symbols"]
    typer.echo(f"symbols   {len(symbols)}: {', '.join(symbols[:12])}{' …' if len(symbols) > 12 else ''}")
    for name, stream in info["streams"].items():
        typer.echo(f"{name}: {stream['files']} file(s), {stream['bytes'] / 1e6:.1f} MB")
        for market, entry in stream["markets"].items():
            gaps = f", id gaps {entry['id_gaps']}" if "id_gaps" in entry else ""
            typer.echo(
                f"  {market:8} rows {entry['rows']:>10}  symbols {entry['symbols']:>4}  "
                f"{entry['first']} → {entry['last']}  flagged gaps {entry['gaps_flagged']}{gaps}  "
                f"duplicate/late {entry['duplicate_or_late_rows']}"
            )
    for crash in info["recorder_crashes"]:
        typer.echo(
            f"recorder session {crash['session']} crashed: {crash['recovered_rows']} row(s) rescued from its "
            f"write-ahead log, at most its last {crash['lost_window_ms']} ms lost"
        )


@app.command("info")
def info(
    path: RecordingPath,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text")] = False,
) -> None:
    """Streams, symbols, time range, row counts and gaps of a recording."""
    from kestrel.storage.catalog import Catalog

    catalog = Catalog(path)
    try:
        summary = catalog.info()
    finally:
        catalog.close()
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        _print_info(summary)


@app.command("query")
def query(
    path: RecordingPath,
    sql: Annotated[str, typer.Argument(help="SQL over the views depth, book_ticker, trade, agg_trade, kline, ...")],
    output: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """Run SQL (DuckDB) over a recording."""
    from kestrel.storage.catalog import Catalog

    if output not in ("table", "csv", "json"):
        raise typer.BadParameter("must be table, csv or json", param_hint="--format")
    catalog = Catalog(path)
    try:
        columns, rows = catalog.query(sql)
    finally:
        catalog.close()
    if output == "json":
        typer.echo(json.dumps([dict(zip(columns, row, strict=True)) for row in rows], default=str))
    elif output == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
    else:
        cells = [columns, *[["" if value is None else str(value) for value in row] for row in rows]]
        widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
        for number, row in enumerate(cells):
            typer.echo("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())
            if number == 0:
                typer.echo("  ".join("-" * width for width in widths))
        typer.echo(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


@app.command("import-raw")
def import_raw_command(
    files: Annotated[
        list[Path], typer.Argument(help="Raw recordings (hftbacktest *.gz, cryptofeed *.ws.* / *.http.*)")
    ],
    out: Annotated[Path, typer.Option("--out", help="Recording directory to write")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the import report as JSON")] = False,
) -> None:
    """Import the shared raw recordings into the Parquet layout, every update id kept."""
    from dataclasses import asdict

    from kestrel.marketdata.importer import import_raw

    for file in files:
        if not file.is_file():
            raise DataError(f"{file}: no such file")
    report = import_raw(files, out)
    if as_json:
        typer.echo(json.dumps(asdict(report), indent=2))
        return
    typer.echo(f"imported {report.frames} frame(s) from {len(files)} file(s) into {out}: {report.rows_written} rows")
    for name, count in report.events.items():
        typer.echo(f"  {name:15} {count}")
    if report.other_markets_skipped:
        typer.echo(f"  skipped {report.other_markets_skipped} frame(s) of markets Kestrel does not trade (COIN-M)")
    for stream, count in report.unknown_streams.items():
        typer.echo(f"  skipped {count} frame(s) of unsupported stream {stream}")
    for key, counters in report.symbols.items():
        typer.echo(f"  {key}: depth gaps {counters['depth_gaps']}, trade drops {counters['trade_drops']}")


@app.command("replay")
def replay(
    path: RecordingPath,
    markets: Annotated[str | None, typer.Option("--markets", help="spot,futures")] = None,
    streams: Annotated[str | None, typer.Option("--streams", help="e.g. depth,trade,book_ticker")] = None,
    symbols: Annotated[str | None, typer.Option("--symbols", help="e.g. BTCUSDT,ETHUSDT")] = None,
    start: Annotated[str | None, typer.Option("--start", help="ISO 8601 or ns (inclusive)")] = None,
    end: Annotated[str | None, typer.Option("--end", help="ISO 8601 or ns (exclusive)")] = None,
    speed: Annotated[float, typer.Option("--speed", min=0.0, help="N× real time; 0 = as fast as possible")] = 0.0,
    limit: Annotated[int, typer.Option("--limit", min=0, help="Stop after N events (0 = all)")] = 0,
    count_only: Annotated[bool, typer.Option("--count", help="Print only the number of events")] = False,
) -> None:
    """Replay a recording in exchange-time order as JSON lines (or count the events)."""
    from kestrel.core.clock import LiveClock
    from kestrel.core.enums import Market
    from kestrel.replay.recorded import paced, replay_events

    market_list = _split(markets)
    for market in market_list or []:
        if market not in {m.value for m in Market}:
            raise typer.BadParameter(f"unknown market {market!r} (spot, futures)", param_hint="--markets")
    events = replay_events(
        path,
        markets=market_list,
        streams=_split(streams),
        symbols=_split(symbols),
        start_ns=_parse_time(start, "--start"),
        end_ns=_parse_time(end, "--end"),
    )
    encoder = msgspec.json.Encoder()
    count = 0
    for event in paced(events, LiveClock(), speed):
        count += 1
        if not count_only:
            line = encoder.encode({"type": type(event).__name__, **msgspec.structs.asdict(event)})
            sys.stdout.write(line.decode() + "\n")
        if limit and count >= limit:
            break
    if count_only:
        typer.echo(str(count))


@app.command("compact")
def compact(path: RecordingPath) -> None:
    """Merge each partition's parts into one file (crash-safe; run while nothing records there)."""
    from kestrel.core.clock import LiveClock
    from kestrel.storage.layout import iter_partitions, resolve_root
    from kestrel.storage.recorder import ParquetRecorder

    root = resolve_root(path)
    if not root.is_dir():
        raise DataError(f"{path}: no such directory")
    recorder = ParquetRecorder(root, LiveClock(), compact_on_close=False)
    report = recorder.start()
    merged = 0
    try:
        for partition, _ in iter_partitions(root):
            merged += recorder.compact_partition(partition)
    finally:
        recorder.close()
    if not report.clean:
        typer.echo(report.summary())
    typer.echo(f"compacted {merged} partition(s)")
