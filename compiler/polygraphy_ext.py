"""ember as a Polygraphy runner: `EmberRunner` builds an ONNX model with ember and runs it on the
GPU or on ember's CPU executor, so Polygraphy's comparator, data loader and tolerances apply to
it (`polygraphy run model.onnx --ember --onnxrt`; the flags are in polygraphy_ext_args.py).
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from polygraphy import constants, util
from polygraphy.backend.base import BaseRunner
from polygraphy.common import TensorMetadata
from polygraphy.logger import G_LOGGER

from ember.errors import EmberError

MARK_ALL = constants.MARK_ALL


@contextlib.contextmanager
def _reported() -> Iterator[None]:
    """ember's errors as Polygraphy reports user errors (`G_LOGGER.critical`: one message, the
    run FAILED, no traceback)."""
    try:
        yield
    except EmberError as e:
        G_LOGGER.critical(f"ember: {e}")


class EmberRunner(BaseRunner):
    """Runs an ONNX model with ember (TensorRT's runner, for ember).

    `model`: an ONNX ModelProto, its bytes or path, or a Polygraphy loader giving one.
    `device`: "auto" (the GPU if there is one, else the CPU executor), "cpu" or "cuda".
    `fp16` / `bf16` / `tf32` / `precision_constraints`: ember's build options (strict FP32
    by default, as Polygraphy's TensorRT runner). `profiles`: optimization profiles, each
    {input: (min, opt, max)}; without them a model with dynamic inputs is built for the
    shapes of each feed. `outputs`: tensors to mark as outputs too; `MARK_ALL` marks every
    tensor that survives ember's fusion (the fused kernels' outputs), for per-layer
    comparison."""

    def __init__(self, model: Any, *, device: str = "auto", fp16: bool = False,
                 bf16: bool = False, tf32: bool = False, precision_constraints: str | None = None,
                 profiles: Sequence[Mapping[str, Sequence[Sequence[int]]]] | None = None,
                 outputs: Sequence[str] | str | None = None, name: str | None = None) -> None:
        super().__init__(name=name, prefix="ember-runner")
        if device not in ("auto", "cpu", "cuda"):
            raise EmberError(f"EmberRunner: device must be auto, cpu or cuda, not {device!r}")
        self._model = model
        self.device = device
        self.options = {"fp16": bool(fp16), "bf16": bool(bf16), "tf32": bool(tf32),
                        "precision_constraints": precision_constraints}
        self.profiles = list(profiles or [])
        self.outputs = outputs

    @util.check_called_by("activate")
    def activate_impl(self) -> None:
        from ember.compiler.flag_groups import model_inputs
        from ember.compiler.onnx_importer import load_model

        model, _ = util.invoke_if_callable(self._model)
        with _reported():
            self.model, _ = load_model(model)
            self.inputs = model_inputs(self.model)
            self._engines: dict[tuple, Any] = {}
            if self.profiles or not any(s.dynamic for s in self.inputs):
                self._engine({})  # static shapes, or the profiles': build now, not in infer

    def _engine(self, shapes: Mapping[str, tuple[int, ...]]):
        """The engine for these input shapes (one per shape set of the dynamic inputs, where
        there are dynamic inputs and no profiles)."""
        dynamic = [s.name for s in self.inputs if s.dynamic] if not self.profiles else []
        key = tuple((name, shapes.get(name)) for name in dynamic)
        engine = self._engines.get(key)
        if engine is not None:
            return engine
        from ember.compiler.builder import OptimizationProfile
        from ember.compiler.builder import compile as compile_model
        from ember.compiler.commands import build_for_shapes
        from ember.compiler.compare import layers_of, named_nodes, with_outputs

        model = self.model
        if self.outputs == MARK_ALL:
            model = named_nodes(model)  # kernels map back to ONNX nodes by name
            # which tensors survive fusion, read from a build for these shapes (with
            # profiles: the first one's opt shapes)
            built = dict(shapes) if not self.profiles else {
                name: tuple(opt) for name, (_, opt, _) in self.profiles[0].items()}
            layers = layers_of(model, built, self.device, self.options)
            model = with_outputs(model, [layer.tensor for layer in layers])
        elif self.outputs:
            model = with_outputs(model, list(self.outputs))
        start = time.perf_counter()
        if self.profiles:
            profiles = []
            for spec in self.profiles:
                profile = OptimizationProfile()
                for name, (lo, opt, hi) in spec.items():
                    profile.set_shape(name, tuple(lo), tuple(opt), tuple(hi))
                profiles.append(profile)
            engine = compile_model(model, device=self.device, profiles=profiles,
                                   **self.options)
        else:
            engine = build_for_shapes(model, shapes, self.device, **self.options)
        G_LOGGER.info(f"{self.name:35} | ember built {len(engine.steps)} step(s) on "
                      f"{engine.device} in {time.perf_counter() - start:.2f} s")
        self._engines[key] = engine
        return engine

    @util.check_called_by("get_input_metadata")
    def get_input_metadata_impl(self) -> TensorMetadata:
        meta = TensorMetadata()
        for spec in self.inputs:
            meta.add(spec.name, spec.dtype, [-1 if d is None else d for d in spec.shape])
        return meta

    @util.check_called_by("infer")
    def infer_impl(self, feed_dict: Mapping[str, Any]) -> OrderedDict:
        with _reported():
            engine = self._engine({k: tuple(v.shape) for k, v in feed_dict.items()})
            start = time.perf_counter()
            outputs = engine(dict(feed_dict))
            self.inference_time = time.perf_counter() - start
        return OrderedDict(outputs)

    @util.check_called_by("deactivate")
    def deactivate_impl(self) -> None:
        del self.model, self._engines
