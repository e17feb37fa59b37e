"""The CPU executor: runs a plan's steps with numpy, from the same manifest as the CUDA executor.

Each step's template has a numpy implementation (`ember.runtime.cpu_kernels`); activations are
written into this context's arena at the offsets of the memory plan, so a wrong plan shows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from ember.errors import PlanError, StepError
from ember.runtime import cpu_kernels, plugins
from ember.runtime.symbolic import (
    bind_data_symbols,
    params_symbolic,
    shape_value,
    substitute_shapes,
)

if TYPE_CHECKING:
    from ember.runtime.engine import Engine


class CpuExecutor:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        try:
            self.arena = np.zeros(engine.arena_bytes, dtype=np.uint8)
        except MemoryError:
            raise PlanError(f"cannot allocate the plan's {engine.arena_bytes}-byte activation "
                            "arena") from None
        for step in engine.steps:
            if step.get("template") not in cpu_kernels.KERNELS:
                raise PlanError(f"step {step.get('name')!r}: unknown template "
                                f"{step.get('template')!r}")
            if step["template"] == "plugin":  # its numpy reference: this process registers it
                plugins.check_reference(step, f"step {step.get('name')!r}")
        self._symbolic = [params_symbolic(step["params"]) for step in engine.steps]
        self._bound: tuple[tuple[int, ...], list, list] | None = None
        self._inputs = [self._root_kind(i) == "input" for i in range(len(engine.buffers))]
        self.values: dict[str, int] = {}  # the last run's symbol values, data-dependent too
        if not engine.symbol_ranges:
            self._bind({})

    def _bind(self, values: Mapping[str, int]) -> tuple[list, list]:
        """Views of the arena and the weights (and views of those) at these symbol values, and
        each step's params with its shapes made concrete; made once per binding. Views of a
        run's inputs are made per run."""
        key = (self.engine.weights_version,
               *(values[s] for s in self.engine.symbol_ranges))
        if self._bound is not None and self._bound[0] == key:
            return self._bound[1], self._bound[2]
        views: list[np.ndarray | None] = [None] * len(self.engine.buffers)
        for i in range(len(self.engine.buffers)):
            if self._root_kind(i) != "input":
                views[i] = self._view(views, i, {}, values)
        params = [substitute_shapes(step["params"], values) if symbolic else step["params"]
                  for step, symbolic in zip(self.engine.steps, self._symbolic, strict=True)]
        self._bound = (key, views, params)
        return views, params

    def _root_kind(self, index: int) -> str:
        b = self.engine.buffers[index]
        while b["kind"] == "view":
            b = self.engine.buffers[b["base"]]
        return b["kind"]

    def _view(self, buffers: list[np.ndarray | None], index: int,
              inputs: Mapping[str, np.ndarray], values: Mapping[str, int]) -> np.ndarray:
        b = self.engine.buffers[index]
        dtype, shape = np.dtype(b["dtype"]), shape_value(b["shape"], values)
        kind = b["kind"]
        if kind == "arena":
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            off = b["offset"]
            if off < 0 or off + nbytes > self.arena.size:
                raise PlanError(f"buffer #{index} lies outside the arena")
            return self.arena[off:off + nbytes].view(dtype).reshape(shape)
        if kind == "weight":
            return self.engine.weight_array(b["offset"], dtype, shape)
        if kind == "view":
            base = buffers[b["base"]]
            if base is None:
                base = self._view(buffers, b["base"], inputs, values)
            return base.reshape(shape)
        if kind == "input":
            return inputs[b["name"]]
        raise PlanError(f"buffer #{index}: kind {kind!r} cannot be read")

    def run(self, inputs: Mapping[str, np.ndarray], values: Mapping[str, int],
            times: list[float] | None = None) -> dict[str, np.ndarray]:
        """Run every step at these symbol values (none for a static plan); with `times`
        (profiling), append each step's milliseconds to it."""
        engine = self.engine
        # a data-dependent symbol is its bound until its step binds it (then the views and
        # params of the steps after it are made again)
        if engine.data_symbols:
            values = {**values, **{k: engine.symbol_ranges[k][2] for k in engine.data_symbols}}
        views, params = self._bind(values)
        buffers = list(views)

        def get(i: int) -> np.ndarray:
            if buffers[i] is None:
                buffers[i] = self._view(buffers, i, inputs, values)
            return buffers[i]

        constraints = engine.manifest.get("constraints") or []
        for index, step in enumerate(engine.steps):
            start = time.perf_counter() if times is not None else 0.0
            what = f"step {step['name']} ({', '.join(step.get('origin', []))})"
            results = _call(step, params[index], get, what)
            if step.get("binds"):
                bind_data_symbols(step, results, values, engine.symbol_ranges, constraints,
                                  what, StepError)
                views, params = self._bind(values)
                buffers = [b if self._inputs[i] else views[i] for i, b in enumerate(buffers)]
            _store(step, params[index], results, get, what)
            if times is not None:
                times.append((time.perf_counter() - start) * 1e3)
        self.values = values
        return {name: np.array(get(desc.buffer))
                for name, desc in engine.tensors.items() if not desc.is_input}


def _call(step: Mapping, params: Mapping, get: Callable[[int], np.ndarray],
          what: str) -> list[np.ndarray]:
    args = [get(i) for i in step["inputs"]]
    results = cpu_kernels.call(step["template"], args, params, what, StepError)
    if len(results) != len(step["outputs"]):
        raise StepError(f"{what}: template {step['template']!r} made {len(results)} "
                        f"result(s) for {len(step['outputs'])} output buffer(s)")
    return results


def _store(step: Mapping, params: Mapping, results: list[np.ndarray],
           get: Callable[[int], np.ndarray], what: str) -> None:
    for i, r in zip(step["outputs"], results, strict=True):
        out = get(i)
        np.copyto(out, cpu_kernels.fitted(r, out.shape, params, what, StepError),
                  casting="unsafe")
