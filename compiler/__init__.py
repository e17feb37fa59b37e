"""ember's public compiler API: import ONNX, run pipelines (`lower`), drive the CLI.

The names load on first use (PEP 562), so a tool that needs none of them — `ember-opt` on IR
text, which the lit suite starts once a test — does not import onnx (~1.5 s)."""

from __future__ import annotations

from typing import Any

__all__ = ["import_onnx", "lower", "run_passes"]


def __getattr__(name: str) -> Any:
    if name == "import_onnx":
        from ember.compiler.onnx_importer import import_onnx

        return import_onnx
    if name in ("lower", "run_passes"):
        from ember.compiler import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'ember.compiler' has no attribute {name!r}")
