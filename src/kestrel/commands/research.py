"""`kestrel train` and `kestrel models list|promote|rollback`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kestrel.config.loading import load_config
from kestrel.core.errors import ConfigurationError

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", help="YAML configuration (see config/research/example.yaml)", show_default=False),
]


def train_command(
    config: ConfigOption,
    out: Annotated[Path | None, typer.Option("--out", help="Run directory (default: <data_dir>/runs/<run id>)")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bars on stderr")] = True,
) -> None:
    """Train: features → labels → purged CV → calibrated model → ONNX → registry."""
    from kestrel.core.clock import LiveClock
    from kestrel.research.train import train

    settings = load_config(config)
    result = train(settings, LiveClock(), out_dir=out, show_progress=progress)
    metrics = result.metrics
    summary = ", ".join(
        f"{name}={metrics[name]:.4f}" if isinstance(metrics.get(name), float) else f"{name}={metrics.get(name)}"
        for name in ("pr_auc", "roc_auc", "brier", "hit_at_k", "avg_utility", "trades")
    )
    typer.echo(f"run {result.run_id}: {summary}")
    reliability = metrics["reliability"]
    typer.echo(
        f"calibration ({reliability['method']}, out of fold): worst populated bucket "
        f"{reliability['worst_error_pp']} pp, limit {reliability['limit_pp']} pp: "
        f"{'passed' if reliability['passed'] else 'FAILED'}"
    )
    failed = [check["name"] for check in metrics["gates"]["checks"] if not check["passed"]]
    typer.echo("promotion gates: " + ("passed" if not failed else "FAILED (" + "; ".join(failed) + ")"))
    typer.echo(f"model sha256 {result.model_sha256}; run directory {result.run_dir}")
    timings = json.loads((result.run_dir / "run.json").read_text()).get("timings_s", {})
    typer.echo("timings (s): " + ", ".join(f"{stage} {seconds:g}" for stage, seconds in timings.items()))
    if result.registered is not None:
        typer.echo(f"registered {result.registered.name} version {result.registered.version} (candidate)")


models_app = typer.Typer(help="List, promote and roll back registered models.", no_args_is_help=True)
RegistryOption = Annotated[
    Path | None,
    typer.Option("--registry", help="Registry folder (default: model.registry_dir of --config, else data/models)"),
]
OptionalConfig = Annotated[Path | None, typer.Option("--config", "-c", help="YAML configuration")]


def _registry(registry: Path | None, config: Path | None) -> Path:
    if registry is not None and config is not None:
        raise ConfigurationError("give --registry or --config, not both")
    if registry is not None:
        return registry
    if config is not None:
        return load_config(config).model.registry_dir
    return Path("data/models")


@models_app.command("list")
def models_list(
    name: Annotated[str | None, typer.Argument(help="Only this model")] = None,
    registry: RegistryOption = None,
    config: OptionalConfig = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Every registered version with its status, gates and headline metrics."""
    from kestrel.research.registry import ModelRegistry

    store = ModelRegistry(_registry(registry, config))
    names = [name] if name else store.names()
    rows = []
    for model in names:
        for entry in store.versions(model):
            metrics = entry.card.get("metrics", {})
            rows.append(
                {
                    "name": model,
                    "version": entry.version,
                    "status": entry.status,
                    "gates_passed": entry.gates_passed,
                    "run_id": entry.card.get("run_id"),
                    "roc_auc": metrics.get("roc_auc"),
                    "pr_auc": metrics.get("pr_auc"),
                    "brier": metrics.get("brier"),
                    "model_sha256": entry.card.get("model_sha256"),
                }
            )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no registered models")
        return
    typer.echo(f"{'name':<24} {'ver':>4} {'status':<12} {'gates':<6} {'roc_auc':>8} {'pr_auc':>8} run")
    for row in rows:
        auc = f"{row['roc_auc']:.4f}" if isinstance(row["roc_auc"], float) else "-"
        pr = f"{row['pr_auc']:.4f}" if isinstance(row["pr_auc"], float) else "-"
        gates = "pass" if row["gates_passed"] else "fail"
        typer.echo(
            f"{row['name']:<24} {row['version']:>4} {row['status']:<12} {gates:<6} {auc:>8} {pr:>8} {row['run_id']}"
        )


@models_app.command("promote")
def models_promote(
    name: Annotated[str, typer.Argument(help="Model name")],
    version: Annotated[int, typer.Argument(help="Version to serve", min=1)],
    registry: RegistryOption = None,
    config: OptionalConfig = None,
) -> None:
    """Serve VERSION of NAME — only if it passed every promotion gate (R-RS-9)."""
    from kestrel.research.registry import ModelRegistry

    entry = ModelRegistry(_registry(registry, config)).promote(name, version)
    typer.echo(f"{entry.name} version {entry.version} is now in production")


@models_app.command("rollback")
def models_rollback(
    name: Annotated[str, typer.Argument(help="Model name")],
    registry: RegistryOption = None,
    config: OptionalConfig = None,
) -> None:
    """Withdraw the production version and serve the previous stable one."""
    from kestrel.research.registry import ModelRegistry

    entry = ModelRegistry(_registry(registry, config)).rollback(name)
    typer.echo(f"{entry.name} rolled back: version {entry.version} is now in production")
