"""Strategies by name (a shipped example) or by `module:Class`."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from kestrel.core.errors import ConfigurationError
from kestrel.strategy.base import Strategy
from kestrel.strategy.examples import EXAMPLES

# the shipped strategies by name: the examples and the full decision pipeline
SHIPPED = {**EXAMPLES, "pipeline": "kestrel.strategy.pipeline:PipelineStrategy"}


def load_strategy(spec: str, params: Mapping[str, str]) -> Strategy:
    """A shipped strategy by name, or any `module:Class` deriving from Strategy."""
    target = SHIPPED.get(spec, spec)
    module_name, _, class_name = target.partition(":")
    if not class_name:
        raise ConfigurationError(f"unknown strategy {spec!r}: use one of {', '.join(sorted(SHIPPED))} or module:Class")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"strategy {spec!r}: cannot import {module_name} ({exc})") from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type) or not issubclass(cls, Strategy):
        raise ConfigurationError(f"strategy {spec!r}: {class_name} is not a kestrel Strategy class")
    return cls(dict(params))
