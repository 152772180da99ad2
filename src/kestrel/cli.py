"""The `kestrel` command.

Every user error ends in one line on stderr naming the problem, and a non-zero exit code:
2 for bad usage or bad configuration, 1 for a failure while running. No tracebacks for user errors;
set KESTREL_DEBUG=1 to see one for an unexpected internal error.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

# Typer vendors its own click since 0.29; its exception classes live here (version pinned by uv.lock).
from typer._click import exceptions as click_exceptions

from kestrel import __version__
from kestrel.commands import backtest
from kestrel.commands import compare as compare_commands
from kestrel.commands import data as data_commands
from kestrel.commands import features as features_commands
from kestrel.commands import ingest as ingest_commands
from kestrel.commands import labels as labels_commands
from kestrel.commands import research as research_commands
from kestrel.commands import run as run_commands
from kestrel.commands import sim as sim_commands
from kestrel.config.loading import (
    ConfigProblems,
    config_revision,
    json_schema,
    load_config,
    masked_dict,
)
from kestrel.core.errors import ConfigurationError, DataError, KestrelError

app = typer.Typer(
    name="kestrel",
    help="Kestrel: automated quantitative trading for Binance spot and USDT-M futures.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
config_app = typer.Typer(help="Check, show and export configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(data_commands.app, name="data")
app.add_typer(sim_commands.app, name="sim")
app.command("ingest")(ingest_commands.ingest)
app.add_typer(features_commands.app, name="features")
app.add_typer(labels_commands.app, name="labels")
app.command("train")(research_commands.train_command)
app.add_typer(research_commands.models_app, name="models")
app.command("backtest")(backtest.backtest_command)
app.command("run")(run_commands.run_command)
app.command("compare")(compare_commands.compare_command)

ConfigFile = Annotated[Path, typer.Argument(help="YAML configuration file", show_default=False)]


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"kestrel {__version__}")


@app.command()
def demo(
    duration: Annotated[float, typer.Option("--duration", min=0.0, help="Seconds to trade (0 = until Ctrl-C)")] = 30.0,
    speed: Annotated[float, typer.Option("--speed", min=0.1, max=100.0, help="Replay speed of the recordings")] = 4.0,
    workdir: Annotated[
        Path | None, typer.Option("--workdir", help="Where the ledger goes (default: a new temporary folder)")
    ] = None,
) -> None:
    """Run the whole system on the embedded defaults against the local simulator."""
    from kestrel.demo import run_demo

    run_demo(duration_s=duration, speed=speed, workdir=workdir)


@config_app.command("check")
def config_check(file: ConfigFile) -> None:
    """Validate FILE: every problem as `section.field: reason` (exit 2), or a one-line summary."""
    try:
        config = load_config(file, env_file=None)
    except ConfigProblems as problems:
        for problem in problems.problems:
            typer.echo(f"{file}: {problem}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"{file}: OK (environment={config.environment}, venue={config.venue.name}, revision={config_revision(config)})"
    )


@config_app.command("show")
def config_show(file: ConfigFile) -> None:
    """Print the effective configuration of FILE (with environment overrides), secrets masked."""
    import yaml

    config = load_config(file)
    typer.echo(f"# effective configuration of {file} (revision {config_revision(config)})")
    typer.echo(yaml.safe_dump(masked_dict(config), sort_keys=False, allow_unicode=True).rstrip())


@config_app.command("schema")
def config_schema(
    out: Annotated[Path | None, typer.Option("--out", help="Write here instead of stdout")] = None,
) -> None:
    """Export the JSON Schema of the configuration files."""
    import json

    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}")


def _fail(message: str, code: int) -> int:
    print(f"kestrel: error: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app and turns every user error into one line and an exit code."""
    try:
        return _run_command(argv)
    except ConfigProblems as exc:
        for problem in exc.problems:
            print(f"kestrel: error: {exc.source}: {problem}", file=sys.stderr)
        return 2
    except ConfigurationError as exc:
        return _fail(str(exc), 2)
    except (DataError, KestrelError) as exc:
        return _fail(str(exc), 1)
    except FileNotFoundError as exc:
        return _fail(f"{exc.filename}: no such file", 2)
    except OSError as exc:
        return _fail(f"{exc.filename or ''}: {exc.strerror or exc}", 1)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:
        if os.environ.get("KESTREL_DEBUG"):
            raise
        return _fail(f"internal error: {exc.__class__.__name__}: {exc} (KESTREL_DEBUG=1 shows the traceback)", 1)


def _run_command(argv: list[str] | None) -> int:
    """Run the Typer app; usage errors (vendored click exceptions) become one line and exit 2."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="kestrel", standalone_mode=False)
    except click_exceptions.NoArgsIsHelpError as exc:
        print(exc.ctx.get_help() if exc.ctx else "", file=sys.stderr)
        return 2
    except click_exceptions.UsageError as exc:
        return _fail(exc.format_message().splitlines()[0], 2)
    except click_exceptions.ClickException as exc:
        return _fail(exc.format_message().splitlines()[0], exc.exit_code or 1)
    except typer.Abort:
        return _fail("aborted", 130)
    except typer.Exit as exc:
        return int(exc.exit_code)
    return int(result) if isinstance(result, int) else 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
