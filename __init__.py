"""ember: an inference compiler for NVIDIA GPUs (ONNX -> xDSL dialects -> CUDA C -> plan).

The TensorRT-shaped API is re-exported here; the compiler is imported lazily, so
`from ember.runtime import ...` on a deployment machine never loads xDSL or ONNX.
"""

from __future__ import annotations

from typing import Any

from ember.errors import EmberError, ModelImportError, PlanError, UnsupportedError  # noqa: F401

__version__ = "0.1.0"

_LAZY = {
    "Builder": "ember.compiler.builder",
    "BuilderConfig": "ember.compiler.builder",
    "BuilderFlag": "ember.compiler.builder",
    "OnnxParser": "ember.compiler.builder",
    "compile": "ember.compiler.builder",
    "NetworkDefinition": "ember.compiler.network",
    "ActivationType": "ember.compiler.network",
    "ElementWiseOperation": "ember.compiler.network",
    "PoolingType": "ember.compiler.network",
    "ReduceOperation": "ember.compiler.network",
    "MatrixOperation": "ember.compiler.network",
    "Runtime": "ember.runtime.engine",
    "Engine": "ember.runtime.engine",
    "ExecutionContext": "ember.runtime.engine",
    "EngineInspector": "ember.runtime.inspector",
    "LayerInformationFormat": "ember.runtime.inspector",
    "Profiler": "ember.runtime.profiler",
    "IProfiler": "ember.runtime.profiler",
}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in ("float32", "float16", "bfloat16"):  # TensorRT's DataType names, as numpy dtypes
        import numpy as np

        if name == "bfloat16":
            import ml_dtypes  # registers bfloat16 with numpy (an onnx dependency)

            return np.dtype(ml_dtypes.bfloat16)
        return np.dtype(name)
    if name in ("backend", "compiler", "runtime", "dialects", "passes", "codegen"):
        return importlib.import_module(f"ember.{name}")
    raise AttributeError(f"module 'ember' has no attribute {name!r}")
