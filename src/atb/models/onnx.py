"""ONNX export of fitted neural models, and a forecaster that runs the exported model.

The exported graph is the model's whole forward pass, target-space output
included: input "window" `[batch, lookback, n_features]` float32, output
"forecast" `[batch, n_horizons]`, batch size free. The model type, horizons
and input shape travel in the file's metadata.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch

from atb.io import atomic_write_bytes
from atb.models.base import ForecastModel, ModelFileError, check_windows

logger = logging.getLogger(__name__)

INPUT_NAME = "window"
OUTPUT_NAME = "forecast"
OPSET_VERSION = 17


def export_onnx(model: ForecastModel, path: str | Path, *, dynamo: bool = False) -> Path:
    """Write `model` as an ONNX file at `path` (atomically) and return the path."""
    path = Path(path)
    atomic_write_bytes(path, onnx_bytes(model, dynamo=dynamo))
    logger.info("exported %s to %s", model.model_type, path)
    return path


def onnx_bytes(model: ForecastModel, *, dynamo: bool = False) -> bytes:
    """`model` as a checked, serialized ONNX model with its metadata.

    `dynamo=False` uses the TorchScript exporter, which handles every built-in
    network in about a second; `dynamo=True` uses the torch.export-based one.
    """
    model.require_capability("onnx_exportable")
    model.check_fitted()
    network = copy.deepcopy(model.network_).to("cpu").eval()
    example = torch.zeros(2, *model.input_shape)
    proto = _export_dynamo(network, example) if dynamo else _export_torchscript(network, example)
    metadata = {
        "model_type": model.model_type,
        "variant": model.variant,
        "horizons": json.dumps(list(model.horizons)),
        "input_shape": json.dumps(list(model.input_shape)),
    }
    onnx.helper.set_model_props(proto, metadata)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


class OnnxForecaster:
    """Forecasts from an exported model with ONNX Runtime (CPU): `predict(X) -> (n, H)`.

    `model` is the path of an exported file, or the model's bytes (`onnx_bytes`).
    """

    def __init__(self, model: str | Path | bytes, threads: int | None = None):
        if isinstance(model, bytes):
            source, name = model, "the ONNX model bytes"
        else:
            path = Path(model)
            if not path.is_file():
                raise ModelFileError(f"{path} does not exist")
            source = name = str(path)
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad models
            raise ModelFileError(f"{name} is not a loadable ONNX model: {exc}") from exc
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.model_type = metadata.get("model_type", "unknown")
        self.horizons = tuple(json.loads(metadata.get("horizons", "[]")))
        self.input_shape = tuple(json.loads(metadata.get("input_shape", "[]")))

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(check_windows(X, self.input_shape, "OnnxForecaster.predict"))
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: X})[0].astype(np.float64)


def _export_torchscript(network: torch.nn.Module, example: torch.Tensor) -> onnx.ModelProto:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The legacy exporter announces its deprecation; warns about LSTM batch sizes,
        # which does not apply (initial states are zeros shaped from the input); and
        # flags attention's shape checks as traced constants, which they are (the
        # free batch axis is not among them).
        for category in (DeprecationWarning, UserWarning, torch.jit.TracerWarning):
            warnings.simplefilter("ignore", category=category)
        torch.onnx.export(
            network, (example,), buffer,
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET_VERSION,
        )
    return onnx.load_from_string(buffer.getvalue())


def _export_dynamo(network: torch.nn.Module, example: torch.Tensor) -> onnx.ModelProto:
    program = torch.onnx.export(
        network, (example,),
        dynamo=True,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        verbose=False,
    )
    return program.model_proto
