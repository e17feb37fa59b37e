"""`ember.backend`: ONNX's backend convention (`onnx.backend.base.Backend`) over ember.

    rep = ember.backend.prepare(model, device="CPU")
    outputs = rep.run([x])        # a list in graph output order
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep, Device, DeviceType

from ember.compiler.builder import compile as _compile


class EmberRep(BackendRep):
    def __init__(self, engine) -> None:
        self.engine = engine

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        names = self.engine.input_names
        if isinstance(inputs, Mapping):
            feed = dict(inputs)
        else:
            arrays = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
            if len(arrays) != len(names):
                from ember.errors import EmberError

                raise EmberError(f"{len(arrays)} input(s) given, the model takes {len(names)}: "
                                 f"{', '.join(names)}")
            feed = dict(zip(names, arrays, strict=True))
        out = self.engine(feed)
        return tuple(out[n] for n in self.engine.output_names)


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
        return EmberRep(_compile(model, device=cls._device(device)))

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU",
                  **kwargs: Any) -> tuple[np.ndarray, ...]:
        return cls.prepare(model, device).run(inputs)

    @classmethod
    def run_node(cls, node: onnx.NodeProto, inputs: Sequence[np.ndarray], device: str = "CPU",
                 outputs_info: Any = None, **kwargs: Any) -> tuple[np.ndarray, ...]:
        raise NotImplementedError("ember compiles whole models: use prepare() or run_model()")


prepare = EmberBackend.prepare
run_model = EmberBackend.run_model
supports_device = EmberBackend.supports_device
