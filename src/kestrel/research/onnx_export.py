"""ONNX export of trained models and an onnxruntime session wrapper (R-RS-2: models served through ONNX).

LightGBM models go through onnxmltools, scikit-learn pipelines (the logistic baseline) through skl2onnx.
The exported bytes are made reproducible (the converters name the graph with a random UUID; we replace
it with a fixed name), so the same trees give the same file and the same SHA-256.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from kestrel.core.errors import DataError

INPUT_NAME = "features"
ONNX_OPSET = 15  # highest opset the pinned onnxmltools converter supports


def _float32_floor(threshold: float) -> float:
    """The largest float32 value ≤ threshold (as a Python float, exactly representable in float32)."""
    value = np.float32(threshold)
    if float(value) > threshold:
        value = np.nextafter(value, np.float32(-np.inf))
    return float(value)


def float32_exact_booster(booster: Any) -> Any:
    """The same LightGBM model with every split threshold moved down to the largest float32 ≤ it.

    LightGBM keeps thresholds as doubles; ONNX tree ensembles hold float32 thresholds. A threshold that
    rounds *up* to a float32 feature value sends that value left in ONNX and right natively, so the two
    disagree on a few rows (we measured 4e-4 on one regressor). For float32 inputs, x ≤ t and
    x ≤ floor32(t) are the same test (no float32 lies between), so this model predicts exactly as the
    original on float32 features while converting to ONNX without any change of decisions. Only
    numerical splits exist in our models (no categorical thresholds to keep).
    """
    import lightgbm

    lines = []
    for line in booster.model_to_string().splitlines():
        if line.startswith("tree_sizes="):
            continue  # byte sizes of the trees change with the text; LightGBM parses without them
        if line.startswith("threshold="):
            values = line[len("threshold=") :].split()
            line = "threshold=" + " ".join(repr(_float32_floor(float(v))) for v in values)
        lines.append(line)
    return lightgbm.Booster(model_str="\n".join(lines) + "\n")


def _finish(model: Any, graph_name: str) -> bytes:
    model.graph.name = graph_name
    model.doc_string = ""
    data: bytes = model.SerializeToString()
    return data


def _is_lightgbm(model: object) -> bool:
    return type(model).__module__.startswith("lightgbm")


def export_classifier(model: object, feature_count: int, graph_name: str = "kestrel_classifier") -> bytes:
    """ONNX bytes whose second output (`probabilities`, float32 rows × 2) is [p(0), p(1)]."""
    if _is_lightgbm(model):
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType as MlFloat

        onnx_model = onnxmltools.convert_lightgbm(
            model,
            initial_types=[(INPUT_NAME, MlFloat([None, feature_count]))],
            zipmap=False,
            target_opset=ONNX_OPSET,
        )
    else:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType

        onnx_model = convert_sklearn(
            model,
            initial_types=[(INPUT_NAME, FloatTensorType([None, feature_count]))],
            options={"zipmap": False},
            target_opset=ONNX_OPSET,
        )
    return _finish(onnx_model, graph_name)


def export_regressor(model: object, feature_count: int, graph_name: str = "kestrel_regressor") -> bytes:
    if not _is_lightgbm(model):
        raise DataError(f"ONNX export: unsupported regressor {type(model).__name__}")
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType as MlFloat

    onnx_model = onnxmltools.convert_lightgbm(
        model, initial_types=[(INPUT_NAME, MlFloat([None, feature_count]))], target_opset=ONNX_OPSET
    )
    return _finish(onnx_model, graph_name)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class OnnxModel:
    """An onnxruntime session over one exported model; thread count from config.model.inference_threads."""

    def __init__(self, source: bytes | Path, threads: int = 1) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # the converters declare a fixed label shape; ORT warns per batch
        data = source.read_bytes() if isinstance(source, Path) else source
        try:
            self._session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise DataError(f"ONNX model cannot be loaded: {exc}") from None
        self.sha256 = sha256_hex(data)
        inputs = self._session.get_inputs()
        self.feature_count = int(inputs[0].shape[1])
        self._input = inputs[0].name
        self._outputs = [output.name for output in self._session.get_outputs()]

    def _run(self, features: np.ndarray) -> list[Any]:
        rows = np.ascontiguousarray(features, dtype=np.float32)
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        if rows.shape[1] != self.feature_count:
            raise DataError(f"ONNX model expects {self.feature_count} features, got {rows.shape[1]}")
        result: list[Any] = self._session.run(None, {self._input: rows})
        return result

    def predict_positive(self, features: np.ndarray) -> np.ndarray:
        """p(1) of a classifier export, float64."""
        probabilities = self._run(features)[self._outputs.index("probabilities")]
        return np.asarray(probabilities[:, 1], dtype=np.float64)

    def predict_value(self, features: np.ndarray) -> np.ndarray:
        """The output of a regressor export, float64."""
        return np.asarray(self._run(features)[0], dtype=np.float64).ravel()
