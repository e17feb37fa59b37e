"""ember: an inference compiler for NVIDIA GPUs (ONNX -> xDSL dialects -> CUDA C -> plan)."""

__version__ = "0.1.0"

from ember.errors import EmberError, ModelImportError, PlanError, UnsupportedError  # noqa: F401
