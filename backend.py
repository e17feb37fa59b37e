"""`ember.backend`: ONNX's backend convention (`onnx.backend.base.Backend`) over ember.

    rep = ember.backend.prepare(model, device="CPU")
    outputs = rep.run([x])        # a list in graph output order

Strict FP32 by default (as Polygraphy); `prepare(model, fp16=True)` (or bf16 / tf32 /
layer_precisions / precision_constraints, `ember.compile`'s options) allows lower precisions.
Any other option is an error, never ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep, Device, DeviceType

from ember.compiler.builder import PRECISION_OPTIONS, refuse_unknown_options
from ember.compiler.builder import compile as _compile


def _precision_options(kwargs: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The precision options among `kwargs`; anything else is refused."""
    refuse_unknown_options({k: v for k, v in kwargs.items() if k not in PRECISION_OPTIONS},
                           where, PRECISION_OPTIONS)
    return dict(kwargs)


class EmberRep(BackendRep):
    """A prepared model. One with dynamic input dims (and no profile to build them with) is
    built at its first run for the shapes given, and again for each new set of shapes (the
    last few plans are kept)."""

    KEEP = 8  # plans a dynamic model keeps, one per set of input shapes

    def __init__(self, engine=None, *, model: onnx.ModelProto | None = None,
                 device: str = "cpu", options: Mapping[str, Any] | None = None) -> None:
        self.engine = engine
        self._model, self._device = model, device
        self._options = dict(options or {})  # precision options of each build
        self._by_shapes: dict[tuple, Any] = {}
        if engine is None:
            inits = {t.name for t in model.graph.initializer}  # type: ignore[union-attr]
            self._names = [vi.name for vi in model.graph.input  # type: ignore[union-attr]
                           if vi.name not in inits]

    def _engine_for(self, feed: Mapping[str, np.ndarray]):
        """The engine built for these input shapes (a static plan each)."""
        from ember.compiler.builder import OptimizationProfile

        shapes = tuple((n, np.shape(feed[n])) for n in self._names if n in feed)
        engine = self._by_shapes.pop(shapes, None)
        if engine is None:
            profile = OptimizationProfile()
            for name, shape in shapes:
                profile.set_shape(name, shape, shape, shape)
            engine = _compile(self._model, device=self._device,  # type: ignore[arg-type]
                              profiles=[profile], **self._options)
            while len(self._by_shapes) >= self.KEEP:
                self._by_shapes.pop(next(iter(self._by_shapes)))
        self._by_shapes[shapes] = engine  # most recently used last
        return engine

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        refuse_unknown_options(kwargs, "ember.backend run", ())
        names = self.engine.input_names if self.engine is not None else self._names
        if isinstance(inputs, Mapping):
            feed = dict(inputs)
        else:
            arrays = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
            if len(arrays) != len(names):
                from ember.errors import EmberError

                raise EmberError(f"{len(arrays)} input(s) given, the model takes {len(names)}: "
                                 f"{', '.join(names)}")
            feed = dict(zip(names, arrays, strict=True))
        engine = self.engine if self.engine is not None else self._engine_for(feed)
        out = engine(feed)
        return tuple(out[n] for n in engine.output_names)


class EmberBackend(Backend):
    @classmethod
    def _device(cls, device: str) -> str:
        kind = Device(device).type
        return "cuda" if kind == DeviceType.CUDA else "cpu"

    @classmethod
    def supports_device(cls, device: str) -> bool:
        if Device(device).type == DeviceType.CPU:
            return True
        from ember.runtime.cuda import cuda_available

        return cuda_available()

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> EmberRep:
        """Build `model` (strict FP32 unless fp16 / bf16 / tf32 / layer_precisions /
        precision_constraints say otherwise; other options are an error)."""
        options = _precision_options(kwargs, "ember.backend.prepare")
        if _dynamic_inputs(model):  # built at run time, for the shapes given
            return EmberRep(model=model, device=cls._device(device), options=options)
        return EmberRep(_compile(model, device=cls._device(device), **options))

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU",
                  **kwargs: Any) -> tuple[np.ndarray, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: onnx.NodeProto, inputs: Sequence[np.ndarray], device: str = "CPU",
                 outputs_info: Any = None, **kwargs: Any) -> tuple[np.ndarray, ...]:
        raise NotImplementedError("ember compiles whole models: use prepare() or run_model()")


def _dynamic_inputs(model: onnx.ModelProto) -> bool:
    inits = {t.name for t in model.graph.initializer}
    return any(vi.name not in inits and vi.type.HasField("tensor_type")
               and any(not d.HasField("dim_value") for d in vi.type.tensor_type.shape.dim)
               for vi in model.graph.input)


prepare = EmberBackend.prepare
run_model = EmberBackend.run_model
supports_device = EmberBackend.supports_device
