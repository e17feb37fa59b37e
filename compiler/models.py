"""ONNX's packaged `light_*` models (in onnx/backend/test/data/light): the built-in examples."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ember.errors import EmberError

LIGHT_MODELS = ("bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50",
                "shufflenet", "squeezenet", "vgg19", "zfnet512")


def light_dir() -> Path:
    return Path(os.path.dirname(onnx.__file__)) / "backend" / "test" / "data" / "light"


def light_model_path(name: str) -> Path:
    name = name.removeprefix("light_")
    if name not in LIGHT_MODELS:
        raise EmberError(f"unknown example '{name}'; choose one of {', '.join(LIGHT_MODELS)}")
    return light_dir() / f"light_{name}.onnx"


def light_model_case(name: str) -> tuple[Path, dict[str, np.ndarray], np.ndarray]:
    """Path, the input ONNX's own runner feeds (`arange(n).reshape(shape) / n`), stored output."""
    path = light_model_path(name)
    model = onnx.load(str(path))
    initializers = {t.name for t in model.graph.initializer}
    inputs = {}
    for vi in model.graph.input:
        if vi.name in initializers:
            continue
        shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        n = int(np.prod(shape))
        inputs[vi.name] = (np.arange(n).reshape(shape) / n).astype(np.float32)
    stored = onnx.TensorProto()
    stored.ParseFromString((path.parent / f"{path.stem}_output_0.pb").read_bytes())
    return path, inputs, numpy_helper.to_array(stored)
