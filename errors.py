"""ember's one exception hierarchy: every error names the node, tensor, step or file at fault."""

from __future__ import annotations

from dataclasses import dataclass


class EmberError(Exception):
    """Base of every error ember raises on purpose."""


@dataclass(frozen=True)
class NodeProblem:
    """One thing wrong with one node of a model."""

    node: str
    op_type: str
    reason: str

    def __str__(self) -> str:
        name = self.node or "<unnamed>"
        return f"node '{name}' ({self.op_type}): {self.reason}"


class ModelImportError(EmberError):
    """A model is malformed or uses what ember does not support; lists every offending node."""

    def __init__(self, problems: list[NodeProblem] | str, source: str = "model") -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        lines = [f"cannot import {source}: {len(self.problems)} problem(s)"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


class UnsupportedError(EmberError):
    """An op, attribute value or dtype that ember does not handle (names the node)."""


class ShapeError(EmberError):
    """Shapes or element types that do not fit an op (names the op and the values)."""


class PassError(EmberError):
    """A pass could not do what it guarantees; names the pass and the op."""


class PipelineError(EmberError):
    """An unknown pass or pipeline name, or a malformed pass list."""


class PlanError(EmberError):
    """A plan file that is truncated, corrupt, foreign or built for another GPU."""


class CudaError(EmberError):
    """A CUDA driver call failed; names the step and kernel."""


class InputError(EmberError):
    """Inputs that do not match the engine: a wrong name, dtype or shape."""


class StepError(EmberError):
    """A step failed while running; names the step and its ONNX origin."""


class SymbolicError(UnsupportedError):
    """A template asked a symbolic size a question only a number answers."""


class CompileError(EmberError):
    """NVRTC rejected a kernel; the message names the kernel and holds NVRTC's log."""

    def __init__(self, message: str, *, kernel: str = "", log: str = "") -> None:
        super().__init__(message)
        self.kernel = kernel
        self.log = log


class BuildCancelled(EmberError):
    """A build stopped because its progress monitor asked (`step_complete` returned False)."""


class TimingCacheError(EmberError):
    """A timing cache that cannot be read (corrupt, truncated, foreign format) or written."""


class PluginError(EmberError):
    """A plugin that is not registered, registered wrongly, or whose functions fail; names the
    plugin (namespace::name and version)."""
