"""ember's public compiler API: import ONNX, run pipelines (`lower`), drive the CLI."""

from ember.compiler.onnx_importer import import_onnx
from ember.compiler.pipeline import lower, run_passes

__all__ = ["import_onnx", "lower", "run_passes"]
