"""The model registry (R-RS-7, R-RS-9): versioned ONNX models with cards, promotion through gates,
rollback to the last stable version.

Layout (config.model.registry_dir):

    {name}/{version:04d}/model.onnx       the classifier (p_up, before calibration)
    {name}/{version:04d}/regressor.onnx   E[ret] (optional)
    {name}/{version:04d}/model.txt        the native LightGBM model (online top-K contributions)
    {name}/{version:04d}/card.json        run id, SHAs, features, calibration, metrics, gate results
    {name}/channels.json                  {"production": version | null, "history": [promoted versions]}

Every file is written to a temporary name and renamed into place, so a reader (a consumer hot-reloading)
never sees half a file. Versions are allocated with an atomic mkdir, so two trainers never share one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kestrel.core.errors import DataError, KestrelError

CHANNELS_FILE = "channels.json"
CARD_FILE = "card.json"
CLASSIFIER_FILE = "model.onnx"
REGRESSOR_FILE = "regressor.onnx"
NATIVE_FILE = "model.txt"


class GateError(KestrelError):
    """A model did not pass the promotion gates (stability, profitability, calibration)."""


def atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _json_bytes(value: object) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()


@dataclass(frozen=True, slots=True)
class ModelVersion:
    name: str
    version: int
    path: Path
    card: dict[str, Any]
    status: str  # production | stable (promoted before) | candidate | rolled_back

    @property
    def gates_passed(self) -> bool:
        gates = self.card.get("gates", {})
        return bool(isinstance(gates, dict) and gates.get("passed") is True)


class ModelRegistry:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # ---- reading ---------------------------------------------------------------------------------
    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(path.name for path in self.root.iterdir() if path.is_dir() and not path.name.startswith("."))

    def _model_dir(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise DataError(f"registry: invalid model name {name!r}")
        return self.root / name

    def channels(self, name: str) -> dict[str, Any]:
        path = self._model_dir(name) / CHANNELS_FILE
        if not path.exists():
            return {"production": None, "history": [], "rolled_back": []}
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except ValueError as exc:
            raise DataError(f"{path}: unreadable registry state ({exc})") from None
        data.setdefault("rolled_back", [])
        return data

    def version_numbers(self, name: str) -> list[int]:
        folder = self._model_dir(name)
        if not folder.is_dir():
            return []
        return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())

    def get(self, name: str, version: int) -> ModelVersion:
        path = self._model_dir(name) / f"{version:04d}"
        card_path = path / CARD_FILE
        if not card_path.exists():
            known = ", ".join(str(v) for v in self.version_numbers(name)) or "none"
            raise DataError(f"registry: model {name!r} has no version {version} (versions: {known})")
        card = json.loads(card_path.read_text())
        channels = self.channels(name)
        if channels.get("production") == version:
            status = "production"
        elif version in channels.get("rolled_back", []):
            status = "rolled_back"
        elif version in channels.get("history", []):
            status = "stable"
        else:
            status = "candidate"
        return ModelVersion(name, version, path, card, status)

    def versions(self, name: str) -> list[ModelVersion]:
        return [self.get(name, version) for version in self.version_numbers(name)]

    def production(self, name: str) -> ModelVersion | None:
        version = self.channels(name).get("production")
        return self.get(name, int(version)) if version is not None else None

    # ---- writing ---------------------------------------------------------------------------------
    def register(self, name: str, files: dict[str, bytes], card: dict[str, Any]) -> ModelVersion:
        """Store a new version (a candidate: nothing serves it until it is promoted)."""
        if CLASSIFIER_FILE not in files:
            raise DataError(f"registry: a version needs {CLASSIFIER_FILE}")
        folder = self._model_dir(name)
        folder.mkdir(parents=True, exist_ok=True)
        version = (self.version_numbers(name) or [0])[-1] + 1
        while True:
            path = folder / f"{version:04d}"
            try:
                path.mkdir()
                break
            except FileExistsError:
                version += 1
        for file_name, data in files.items():
            atomic_write(path / file_name, data)
        atomic_write(path / CARD_FILE, _json_bytes({**card, "name": name, "version": version}))
        return self.get(name, version)

    def _write_channels(self, name: str, channels: dict[str, Any]) -> None:
        atomic_write(self._model_dir(name) / CHANNELS_FILE, _json_bytes(channels))

    def promote(self, name: str, version: int) -> ModelVersion:
        """Serve `version`, only if its card says it passed every gate (the golden rule, R-RS-9)."""
        candidate = self.get(name, version)
        if not candidate.gates_passed:
            failed = [
                str(check.get("name"))
                for check in candidate.card.get("gates", {}).get("checks", [])
                if isinstance(check, dict) and not check.get("passed")
            ]
            reason = ", ".join(failed) if failed else "no gate results in its card"
            raise GateError(f"model {name} version {version} failed its promotion gates: {reason}")
        channels = self.channels(name)
        if channels.get("production") == version:
            return candidate
        history = [v for v in channels.get("history", []) if v != version]
        channels.update(
            production=version,
            history=[*history, version],
            rolled_back=[v for v in channels.get("rolled_back", []) if v != version],
        )
        self._write_channels(name, channels)
        return self.get(name, version)

    def rollback(self, name: str) -> ModelVersion:
        """Withdraw the production version and serve the previous stable one."""
        channels = self.channels(name)
        current = channels.get("production")
        if current is None:
            raise DataError(f"registry: model {name!r} has no production version to roll back")
        history = [v for v in channels.get("history", []) if v != current]
        if not history:
            raise DataError(f"registry: model {name!r} has no earlier stable version to roll back to")
        channels.update(
            production=history[-1],
            history=history,
            rolled_back=[*channels.get("rolled_back", []), current],
        )
        self._write_channels(name, channels)
        return self.get(name, history[-1])
