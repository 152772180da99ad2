"""Generate docs/configuration.md (the configuration reference) from the pydantic models.

`--check` exits 1 when the committed file differs from what the models say (CI keeps it current).
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from kestrel.config.models import KestrelConfig

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "configuration.md"

HEADER = """# Configuration reference

Generated from `src/kestrel/config/models.py` by `scripts/config_docs.py`; do not edit by hand.

Sources, lowest to highest priority: model defaults (below) < the YAML file < `.env` < the environment.
Any field can be set in the environment as `KESTREL__SECTION__FIELD` (nested sections with more `__`,
e.g. `KESTREL__DATA__INGEST__MICRO_BATCH_MS=10`). Secrets (marked *secret*) are never printed or logged;
set them in the environment or `.env`, never in a committed file. Unknown keys are errors.
`kestrel config check FILE` validates a file; `kestrel config show FILE` prints the effective values;
`config/kestrel.schema.json` is the JSON Schema for editors.
"""


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    arguments = get_args(annotation)
    if origin is Literal:
        return " \\| ".join(f"`{value}`" for value in arguments)
    if origin in (Union, UnionType):
        return " \\| ".join(_type_name(argument) for argument in arguments)
    if origin is Annotated:
        return _type_name(arguments[0])
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(_type_name(a) for a in arguments)}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: Any) -> str:
    if field.is_required():
        return "**required**"
    value = field.default
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        return f"{len(value)} rows (see model)"
    if isinstance(value, list):
        return "[" + ", ".join(str(getattr(v, "value", v)) for v in value) + "]"
    return f"`{getattr(value, 'value', value)}`"


def _rows(model: type[BaseModel], prefix: str, out: list[str]) -> None:
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            nested.append((f"{prefix}{name}", annotation))
            continue
        type_text = _type_name(annotation)
        secret = " *secret*" if "SecretStr" in type_text else ""
        description = (field.description or "").replace("|", "\\|")
        out.append(f"| `{prefix}{name}` | {type_text} | {_default(field)} | {description}{secret} |")
    for name, sub in nested:
        out.append("")
        out.append(f"## `{name}`")
        out.append("")
        out.append("| key | type | default | meaning |")
        out.append("| --- | --- | --- | --- |")
        _rows(sub, f"{name}.", out)


def render() -> str:
    lines = [HEADER, "## top level", "", "| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    _rows(KestrelConfig, "", lines)
    return "\n".join(lines) + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not TARGET.exists() or TARGET.read_text(encoding="utf-8") != text:
            print("docs/configuration.md is out of date: run ./dev run python scripts/config_docs.py")
            return 1
        return 0
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
