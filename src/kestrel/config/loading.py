"""Load, validate and describe configuration files.

Every problem is reported as ``section.field: reason`` — all of them at once, not the first only —
so an operator fixes a file in one pass.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from kestrel.config.models import KestrelConfig
from kestrel.core.errors import ConfigurationError

MASK = "**********"


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    location: str  # dotted path, e.g. "risk.leverage"; "config" for whole-file problems
    reason: str

    def __str__(self) -> str:
        return f"{self.location}: {self.reason}"


class ConfigProblems(ConfigurationError):
    """One or more problems in a configuration; `problems` lists each."""

    def __init__(self, source: str, problems: list[ConfigProblem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(str(p) for p in problems))


_REASONS = {
    "extra_forbidden": "unknown key",
    "missing": "required field is missing",
}


def _problems_from(error: ValidationError) -> list[ConfigProblem]:
    problems = []
    for item in error.errors(include_url=False):
        location = ".".join(str(part) for part in item["loc"] if not isinstance(part, int)) or "config"
        indices = [str(part) for part in item["loc"] if isinstance(part, int)]
        if indices:
            location += "[" + "][".join(indices) + "]"
        reason = _REASONS.get(item["type"], item["msg"])
        if reason.startswith("Value error, "):
            reason = reason[len("Value error, ") :]
        problems.append(ConfigProblem(location, reason))
    return problems


def read_yaml_file(path: Path) -> dict[str, Any]:
    """Read a YAML mapping; raises ConfigProblems with one clear line for every kind of bad file."""
    source = str(path)
    if not path.exists():
        raise ConfigProblems(source, [ConfigProblem("config", "no such file")])
    if not path.is_file():
        raise ConfigProblems(source, [ConfigProblem("config", "not a regular file")])
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigProblems(source, [ConfigProblem("config", f"cannot be read ({exc.__class__.__name__})")]) from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigProblems(source, [ConfigProblem("config", f"invalid YAML{where}: {problem}")]) from None
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise ConfigProblems(source, [ConfigProblem("config", "top level must be a mapping of sections")])
    return loaded


def load_config(
    path: str | Path | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    env_file: str | Path | None = ".env",
) -> KestrelConfig:
    """The effective configuration: model defaults < YAML file < `overrides` < .env < environment.

    `path=None` uses no file (then `overrides` must give at least `environment`).
    Raises ConfigProblems listing every problem.
    """
    values: dict[str, Any] = {}
    source = "config"
    if path is not None:
        source = str(path)
        values = read_yaml_file(Path(path))
    if overrides:
        values = _deep_merge(values, dict(overrides))
    if env_file is not None and Path(env_file).is_file():
        values = _deep_merge(values, _dotenv_values(Path(env_file)))
    try:
        # .env is merged above (only KESTREL__ keys: a shared .env may hold other tools' variables);
        # pydantic-settings then lays the real environment over everything.
        return KestrelConfig(_env_file=None, **values)
    except ValidationError as exc:
        raise ConfigProblems(source, _problems_from(exc)) from None


def embedded_defaults() -> KestrelConfig:
    """The configuration `kestrel demo` runs on: the model defaults (local simulator, embedded stores)."""
    return load_config(None, overrides={"environment": "dev"}, env_file=None)


ENV_PREFIX = "KESTREL__"


def _dotenv_values(path: Path) -> dict[str, Any]:
    """KESTREL__A__B=v lines of a .env file as {"a": {"b": v}}; JSON lists/objects are decoded."""
    from dotenv import dotenv_values

    nested: dict[str, Any] = {}
    for key, raw in dotenv_values(path).items():
        if not key.upper().startswith(ENV_PREFIX) or raw is None:
            continue
        parts = [part.lower() for part in key[len(ENV_PREFIX) :].split("__") if part]
        if not parts:
            continue
        value: Any = raw
        if raw.strip().startswith(("[", "{")):
            try:
                value = json.loads(raw)
            except ValueError:
                value = raw
        cursor = nested
        for part in parts[:-1]:
            cursor = cursor.setdefault(part, {})
        cursor[parts[-1]] = value
    return nested


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _walk_secrets(value: object) -> Iterator[SecretStr]:
    if isinstance(value, SecretStr):
        yield value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _walk_secrets(getattr(value, name))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _walk_secrets(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk_secrets(item)


def secret_values(config: KestrelConfig) -> list[str]:
    """Every secret's plain value (non-empty), for the log redaction filter."""
    return [s.get_secret_value() for s in _walk_secrets(config) if s.get_secret_value()]


def masked_dict(config: KestrelConfig) -> dict[str, Any]:
    """The effective configuration as plain data with every secret replaced by a mask."""
    data: dict[str, Any] = config.model_dump(mode="json")
    return data  # pydantic dumps SecretStr as "**********" in JSON mode


def config_revision(config: KestrelConfig) -> str:
    """Short, stable identifier of a configuration's content (secrets excluded): recorded on signals."""
    canonical = json.dumps(masked_dict(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def json_schema() -> dict[str, Any]:
    """JSON Schema of the YAML files (for editors and the UI)."""
    schema = KestrelConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Kestrel configuration"
    return schema
