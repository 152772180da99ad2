"""Typed configuration: one pydantic model per section, YAML files, `KESTREL__SECTION__FIELD` overrides."""

from kestrel.config.loading import ConfigProblem, ConfigProblems, config_revision, load_config, secret_values
from kestrel.config.models import KestrelConfig

__all__ = [
    "ConfigProblem",
    "ConfigProblems",
    "KestrelConfig",
    "config_revision",
    "load_config",
    "secret_values",
]
