"""Runtime -> Engine -> ExecutionContext (DESIGN §5), TensorRT-shaped.

An Engine is a loaded plan: I/O names, dtypes, shapes, formats, and the step list. Each
ExecutionContext owns its activation arena, so several contexts of one engine run at once from
threads. This module imports numpy, the standard library and the rest of `ember.runtime` only.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ember.errors import EmberError, InputError, PlanError, UnsupportedError
from ember.runtime.logger import ILogger, Severity, check_logger, emit
from ember.runtime.manifest import check_memory, data_symbols, host_memory_bytes, symbols_of
from ember.runtime.manifest_schema import load
from ember.runtime.plan import Plan, read_plan
from ember.runtime.symbolic import (
    MAX,
    dim_symbols,
    dim_value,
    profile_values,
    shape_value,
    symbol_values,
)
from ember.runtime.trt_types import (
    ContextManaged,
    DataType,
    Dims,
    HostMemory,
    TensorFormat,
    TensorIOMode,
    int_dims,
)

if TYPE_CHECKING:
    from ember.runtime.inspector import EngineInspector
    from ember.runtime.profiler import Profiler


@dataclass(frozen=True)
class TensorDesc:
    name: str
    dtype: np.dtype
    spec: tuple[int | str, ...]    # dims: ints, and monomials of the plan's symbols ("N")
    format: str
    buffer: int
    is_input: bool

    @property
    def shape(self) -> tuple[int, ...]:
        """TensorRT's form: -1 where a dim is symbolic."""
        return tuple(d if isinstance(d, int) else -1 for d in self.spec)


def launches(step: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A step's CUDA launch and its kernel variants' (none for a host step)."""
    launch = step.get("cuda")
    if not isinstance(launch, Mapping) or step.get("device") == "cpu":
        return []
    variants = launch.get("variants", [])
    return [launch, *(v for v in variants if isinstance(v, Mapping))] \
        if isinstance(variants, list) else [launch]


def workspace_layout(steps: Sequence[Mapping[str, Any]]) -> tuple[dict[int, int], int, int]:
    """The zeroed scratch memory of the steps that ask for it (split-K), besides the arena:
    each step's own arrival counters (256-byte aligned; a kernel leaves them zeroed for the
    next run) and one area of partial tiles that they share (steps run in stream order).
    Returns each such step's counter offset, the shared area's offset (after the last
    counters) and the total bytes."""
    offsets: dict[int, int] = {}
    counters, shared = 0, 0
    for i, step in enumerate(steps):
        own = 0  # a step's kernel variants never run together: they share its counters
        for launch in launches(step):
            if not launch.get("workspace"):
                continue
            sizes = (launch.get("counters", 0), launch["workspace"])
            if not all(isinstance(v, int) and 0 < v <= 1 << 34 for v in sizes):
                raise PlanError(f"step {i} ({step.get('name')}): bad workspace sizes {sizes!r}")
            own = max(own, sizes[0])
            shared = max(shared, sizes[1])
        if own:
            offsets[i] = counters
            counters += -(-own // 256) * 256
    return offsets, counters, counters + shared


def workspace_bytes(steps: Sequence[Mapping[str, Any]]) -> int:
    """The kernel workspace a plan's contexts allocate (`workspace_layout`'s total)."""
    return workspace_layout(steps)[2]


class Engine(ContextManaged):
    """A deserialized plan (TensorRT's ICudaEngine). Query I/O with the TensorRT names; make
    contexts to run it. `logger` receives the runtime's messages (a WARNING Logger if None)."""

    def __init__(self, plan: Plan, device: str = "auto", *, allow_rejit: bool = False,
                 logger: ILogger | None = None) -> None:
        self.logger = check_logger(logger, "Engine")
        self.plan = plan
        self.manifest = m = plan.manifest
        self.weights: memoryview | bytearray | None = (
            plan.section("weights") if "weights" in plan.section_names else None)
        # a REFIT plan's recipes (runtime/refit.py); a stripped plan's weights are rebuilt from
        # what it kept, and it runs once refit
        self.refit_table = None
        if "refit" in plan.section_names:
            from ember.runtime.refit import load_refit

            self.refit_table, self.weights = load_refit(plan)
        self.refit_count = 0
        # the executors' views of the weights are current while this is
        self.weights_version = 0
        # the typed manifest (runtime.manifest_schema), validated; the executors read the
        # buffers and the decoded steps
        self.schema, self.buffers, self.steps = load(
            m, len(self.weights) if self.weights else 0)
        if self.refit_table is not None:
            self.refit_table.check_buffers(self.buffers, len(self.weights or b""))
        # symbolic dims: name -> (min, opt, max); kernels take their values at run time. The
        # inputs' shapes give `symbols`; a step gives each of `data_symbols` (a result's
        # data-dependent length: symbol -> (step, result, axis)); `symbol_ranges` has both
        self.symbol_ranges = symbols_of(m)
        self.data_symbols = data_symbols(self.buffers, self.steps, self.symbol_ranges)
        self.symbols = {k: v for k, v in self.symbol_ranges.items()
                        if k not in self.data_symbols}
        self.arena_bytes: int = m["arena_bytes"]
        self.tensors: dict[str, TensorDesc] = {}
        for is_input, key in ((True, "inputs"), (False, "outputs")):
            for t in m[key]:
                self.tensors[t["name"]] = TensorDesc(
                    t["name"], np.dtype(t["dtype"]), tuple(t["shape"]), t.get("format", ""),
                    t["buffer"], is_input)
        self.allow_rejit = allow_rejit
        self.device = _pick_device(device, m, allow_rejit, self.logger)
        _check_memory(self)
        self._default_context: ExecutionContext | None = None
        self._lock = threading.Lock()
        self.name = ""
        emit(self.logger, Severity.INFO,
             f"loaded a plan of {len(self.steps)} kernel(s) for the {self.device.upper()}: "
             f"{len(self.input_names)} input(s), {len(self.output_names)} output(s), activation "
             f"arena {self.arena_bytes} bytes")

    # -- TensorRT-style queries ----------------------------------------------------------------
    @property
    def num_io_tensors(self) -> int:
        return len(self.tensors)

    def get_tensor_name(self, index: int) -> str:
        names = list(self.tensors)
        if isinstance(index, bool) or not isinstance(index, int | np.integer) \
                or not 0 <= index < len(names):
            raise EmberError(f"get_tensor_name({index!r}): the index of an I/O tensor is an "
                             f"integer in [0, {len(names)})")
        return names[index]

    def get_tensor_shape(self, name: str) -> Dims:
        """The shape, -1 where a dim is dynamic (an optimization profile's range; a context's
        `get_tensor_shape` gives the run's)."""
        return Dims(self._desc(name).shape)

    @property
    def num_optimization_profiles(self) -> int:
        return max(1, len(self.manifest.get("profiles") or []))

    def get_tensor_profile_shape(self, name: str, profile_index: int = 0
                                 ) -> tuple[Dims, Dims, Dims]:
        """(min, opt, max) shapes of an input in an optimization profile. A plan's kernels
        serve every profile: each symbol's range is the union of the profiles'."""
        desc = self._desc(name)
        _check_profile_index(profile_index, self.num_optimization_profiles)
        if not 0 <= profile_index < self.num_optimization_profiles:
            raise EmberError(f"profile index {profile_index} out of range; the engine has "
                             f"{self.num_optimization_profiles} profile(s)")
        profiles = self.manifest.get("profiles") or []
        if not desc.is_input:
            raise EmberError(f"'{name}' is an output; profiles give input shapes")
        shapes = profiles[profile_index].get(name) if profiles else None
        if isinstance(shapes, list) and len(shapes) == 3:
            return tuple(Dims(s) for s in shapes)  # type: ignore[return-value]
        return tuple(Dims(shape_value(desc.spec, {k: v[i] for k, v in self.symbols.items()}))
                     for i in range(3))  # type: ignore[return-value]

    def get_tensor_dtype(self, name: str) -> DataType:
        """The DataType (numpy takes it as a dtype: `np.dtype(engine.get_tensor_dtype(n))`;
        `trt.nptype` gives the scalar type). An I/O type TensorRT has no DataType for (float64,
        int16, ...) is an error naming it; `engine.tensors[name].dtype` is ember's numpy dtype."""
        try:
            return DataType.from_numpy(self._desc(name).dtype)
        except UnsupportedError as e:
            raise UnsupportedError(f"tensor '{name}': {e}") from None

    def get_tensor_format(self, name: str) -> TensorFormat:
        """LINEAR (NCHW, and every tensor that is not 4-D), HWC (NHWC) or CHW4 (NC4HW4);
        ember's own name is `engine.tensors[name].format`."""
        return TensorFormat.of(self._desc(name).format)

    def get_tensor_format_desc(self, name: str) -> str:
        desc = self._desc(name)
        fmt = TensorFormat.of(desc.format)
        what = {TensorFormat.LINEAR: "Row major linear", TensorFormat.HWC: "Channel major",
                TensorFormat.CHW4: "Four wide channel vectorized row major"}[fmt]
        return f"{what} {DataType.from_numpy(desc.dtype).name} format (k{fmt.name})"

    def get_tensor_vectorized_dim(self, name: str) -> int:
        """The dim that CHW4 packs by 4 (1, the channels); -1 for the other formats."""
        return 1 if self.get_tensor_format(name) is TensorFormat.CHW4 else -1

    def get_tensor_components_per_element(self, name: str) -> int:
        return 4 if self.get_tensor_format(name) is TensorFormat.CHW4 else 1

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return TensorIOMode.INPUT if self._desc(name).is_input else TensorIOMode.OUTPUT

    def is_shape_inference_io(self, name: str) -> bool:
        """False: ember has no shape-tensor I/O."""
        self._desc(name)
        return False

    @property
    def workspace_bytes(self) -> int:
        """Kernel scratch memory each context allocates besides the arena (split-K)."""
        return workspace_bytes(self.steps)

    @property
    def device_memory_size(self) -> int:
        """Device memory an execution context allocates: the activation arena and the kernel
        workspace (at the profiles' max shapes)."""
        return self.arena_bytes + self.workspace_bytes

    device_memory_size_v2 = device_memory_size

    @property
    def refittable(self) -> bool:
        """Built with BuilderFlag.REFIT (or STRIP_PLAN): `ember.Refitter` takes it."""
        return self.refit_table is not None

    @property
    def needs_refit(self) -> bool:
        """A weight-stripped plan not refit yet: it cannot run."""
        return self.refit_table is not None and self.refit_table.stripped \
            and not self.refit_count

    def weight_array(self, offset: int, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        """A read-only view of weight bytes (the plan's own until a refit writes new ones)."""
        if isinstance(self.weights, bytearray):
            count = int(np.prod(shape, dtype=np.int64))
            if offset < 0 or offset + count * dtype.itemsize > len(self.weights):
                raise PlanError(f"a weight at offset {offset} lies outside the weights")
            array = np.frombuffer(self.weights, dtype, count, offset).reshape(shape)
            array.flags.writeable = False
            return array
        return self.plan.array("weights", offset, dtype, shape)

    def write_weights(self, updates: Sequence[tuple[int, bytes]]) -> None:
        """Refit: new bytes at these offsets of the weights, on the host and the GPU (the
        Refitter's; every context of the engine sees them from its next run)."""
        if not isinstance(self.weights, bytearray):  # the plan's mapping is read-only
            self.weights = bytearray(self.weights or b"")
            self.weights_version += 1
        for offset, data in updates:
            self.weights[offset:offset + len(data)] = data
        self.refit_count += 1
        state = getattr(self, "_cuda_state", None)
        if state is not None:
            state.weights.upload(np.frombuffer(self.weights, dtype=np.uint8))

    @property
    def profiling_verbosity(self):
        """DETAILED: a plan keeps every layer's detail (the inspector's JSON)."""
        from ember.runtime.inspector import ProfilingVerbosity

        return ProfilingVerbosity.DETAILED

    def serialize(self) -> HostMemory:
        """The plan's bytes (TensorRT's IHostMemory), loadable by `Runtime`; after a refit,
        with the new weights (a refit stripped plan comes out whole)."""
        if self.refit_count:
            from ember.runtime.refit import refit_plan_bytes

            return HostMemory(refit_plan_bytes(self))
        return HostMemory(self.plan._require_open())

    @property
    def input_names(self) -> list[str]:
        return [n for n, t in self.tensors.items() if t.is_input]

    @property
    def output_names(self) -> list[str]:
        return [n for n, t in self.tensors.items() if not t.is_input]

    def _desc(self, name: str) -> TensorDesc:
        if name not in self.tensors:
            raise InputError(f"no I/O tensor named '{name}'; the engine has "
                             f"{', '.join(self.tensors)}")
        return self.tensors[name]

    @property
    def num_layers(self) -> int:
        """The plan's steps: one kernel launch (or host step) each."""
        return len(self.steps)

    def create_engine_inspector(self) -> EngineInspector:
        """TensorRT's IEngineInspector: per-layer and whole-engine information, text or JSON."""
        from ember.runtime.inspector import EngineInspector

        return EngineInspector(self)

    @property
    def inspector(self) -> EngineInspector:
        return self.create_engine_inspector()

    @property
    def pdl_launches(self) -> int:
        """The plan's kernel launches that may start programmatically: sm_90+ kernels that wait
        for the kernel before them ("pdl" in their launch records)."""
        return sum(1 for step in self.steps for launch in launches(step) if launch.get("pdl"))

    def create_execution_context(self, *, cuda_graph: bool = False,
                                 pdl: bool | None = None) -> ExecutionContext:
        """`cuda_graph`: replay the step list as one captured CUDA graph (CUDA engines).
        `pdl`: launch the kernels that allow it (sm_90+ plans) programmatically, each starting
        before the one ahead of it has finished and waiting for it in the kernel. None (the
        default): wherever the plan allows; True: the same, with a warning where nothing can;
        False: every kernel after the one before has finished (NOTES.md, sessions 32-34)."""
        if self.needs_refit:
            raise EmberError("the plan was built with BuilderFlag.STRIP_PLAN: its weights are "
                             "not in it. Refit it from the ONNX model first "
                             "(ember.OnnxParserRefitter(ember.Refitter(engine, logger), logger)"
                             ".refit_from_file(path), or `ember refit PLAN MODEL.onnx -o OUT`)")
        return ExecutionContext(self, cuda_graph=cuda_graph, pdl=pdl)

    def __call__(self, inputs: Mapping[str, np.ndarray] | None = None, /,
                 **named: np.ndarray) -> dict[str, np.ndarray]:
        """Run on this engine's own context (made once: each context holds device memory)."""
        if inputs is not None and not isinstance(inputs, Mapping):
            raise InputError(f"an engine is called with a dict of input name -> array (or "
                             f"keyword arguments), not {type(inputs).__name__}")
        with self._lock:
            if self._default_context is None:
                self._default_context = self.create_execution_context()
        return self._default_context.execute({**(inputs or {}), **named})


def _pick_device(device: str, manifest: Mapping, allow_rejit: bool = False,
                 logger: ILogger | None = None) -> str:
    if device not in ("auto", "cpu", "cuda"):
        raise EmberError(f"device must be 'auto', 'cpu' or 'cuda', not {device!r}")
    if device == "cpu":
        return "cpu"
    target = manifest.get("target")
    has_cuda_code = isinstance(target, Mapping) and target.get("device") == "cuda"
    if device == "cuda":
        if not has_cuda_code:
            raise EmberError("this plan holds no CUDA kernels (it was built without --arch); "
                             "rebuild with a target arch, or run it with device='cpu'")
        return "cuda"
    if has_cuda_code:
        from ember.runtime.cuda import cuda_available, default_device
        from ember.runtime.plan import check_target

        if cuda_available():
            try:  # a plan for another GPU runs on the CPU rather than not at all
                check_target(target, default_device().arch, allow_rejit)
            except PlanError as e:
                if logger is not None:
                    emit(logger, Severity.WARNING, f"the plan runs on the CPU: {e}")
                return "cpu"
            return "cuda"
    return "cpu"


def _check_memory(engine: Engine) -> None:
    """A context's arena and workspace must fit the device's memory (the host's on the CPU)."""
    if engine.device == "cuda":
        from ember.runtime.cuda import default_device

        limit, what = default_device().total_memory, "GPU"
    else:
        limit, what = host_memory_bytes(), "host"
    check_memory(engine.arena_bytes, engine.workspace_bytes, limit, what)


def _check_profile_index(index: Any, count: int) -> None:
    if isinstance(index, bool) or not isinstance(index, int | np.integer):
        raise EmberError(f"a profile index is an integer in [0, {count}), not {index!r}")


# TensorRT context attributes ember does not have, and why (setting one is an error naming it)
_NOT_CONTEXT = {
    "debug_sync": "per-step synchronization is not implemented (ember.Profiler times each step)",
    "error_recorder": "errors are raised as ember.errors exceptions",
    "nvtx_verbosity": "ember emits no NVTX ranges", "persistent_cache_limit": "not implemented",
    "enqueue_emits_profile": "a set profiler is reported on every run",
    "temporary_allocator": "not implemented", "device_memory": "each context owns its memory",
}


class ExecutionContext(ContextManaged):
    """Runs the engine's steps with its own activation memory (TensorRT's IExecutionContext).

    Bound-address execution (`set_tensor_address` + `execute_async_v3` / `execute_v2`) works on
    both executors: on the GPU an address is a device pointer; on the CPU it is a host address
    (`array.ctypes.data` of a C-contiguous buffer large enough for the tensor, or the numpy
    array itself), and execute_async_v3 has finished when it returns."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _NOT_CONTEXT:
            raise UnsupportedError(f"ExecutionContext.{name} is not implemented "
                                   f"({_NOT_CONTEXT[name]}); setting it would do nothing")
        if not (name.startswith("_") or name in ("engine", "profiler", "name")):
            raise UnsupportedError(f"ExecutionContext has no setting '{name}'")
        object.__setattr__(self, name, value)

    def __init__(self, engine: Engine, *, cuda_graph: bool = False,
                 pdl: bool | None = None) -> None:
        self.engine = engine
        self.name = ""
        self._host_addresses: dict[str, int | np.ndarray] = {}
        self._lock = threading.Lock()
        self._profiler: Profiler | None = None
        # input shapes set for execute_async_v3 (TensorRT's set_input_shape), and the symbol
        # values they give
        self._input_shapes: dict[str, tuple[int, ...]] = {
            n: t.spec for n, t in engine.tensors.items()
            if t.is_input and all(isinstance(d, int) for d in t.spec)}  # type: ignore[misc]
        self._values: dict[str, int] | None = {} if not engine.symbols else None
        self._data_values: dict[str, int] = {}  # the last run's data-dependent lengths
        # outputs given memory by an IOutputAllocator once a run knows their size, and the
        # address each allocator gave last
        self._allocators: dict[str, Any] = {}
        self._allocated: dict[str, Any] = {}
        self._bound_outputs: set[str] = set()
        self._profile = 0
        if pdl is True and (engine.device != "cuda" or not engine.pdl_launches):
            where = ("the CPU executor" if engine.device != "cuda" else
                     f"no kernel of this plan (built for {engine.manifest['target']['arch']}) "
                     "waits for the one before it; sm_90+ kernels do")
            emit(engine.logger, Severity.WARNING, f"pdl=True: nothing launches programmatically "
                 f"({where}): each kernel runs after the one before")
        if engine.device == "cuda":
            from ember.runtime.cuda_executor import CudaExecutor

            self._executor = CudaExecutor(engine, cuda_graph=cuda_graph, pdl=pdl is not False)
        else:
            from ember.runtime.cpu_executor import CpuExecutor

            self._executor = CpuExecutor(engine)

    @property
    def profiler(self) -> Profiler | None:
        """TensorRT's `context.profiler`: when set (an `ember.Profiler`, or any object with
        `report_layer_time(name, ms)`), every run times each step and reports it there. A
        CUDA-graph context launches its steps one by one while profiled; execute_async_v3 then
        waits for the GPU before it returns. None (the default) turns profiling off."""
        return self._profiler

    @profiler.setter
    def profiler(self, profiler: Profiler | None) -> None:
        if profiler is not None and not callable(getattr(profiler, "report_layer_time", None)):
            raise EmberError(f"a profiler needs a report_layer_time(layer_name, ms) method; "
                             f"got {type(profiler).__name__}")
        self._profiler = profiler

    def _report(self, profiler: Profiler, times: list[float]) -> None:
        from ember.runtime.profiler import GRAPH_NOTE, deliver

        executor = self._executor
        graph = getattr(executor, "cuda_graph", False) and not getattr(executor, "host_steps", 0)
        deliver(profiler, self.engine.steps, times, GRAPH_NOTE if graph else None)

    def _check_inputs(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        engine = self.engine
        if not isinstance(inputs, Mapping):
            raise InputError(f"execute takes a dict of input name -> array, not "
                             f"{type(inputs).__name__}")
        unknown = [n for n in inputs if n not in engine.tensors or not engine.tensors[n].is_input]
        if unknown:
            raise InputError(f"unknown input(s) {', '.join(map(repr, unknown))}; expected "
                             f"{', '.join(engine.input_names)}")
        missing = [n for n in engine.input_names if n not in inputs]
        if missing:
            raise InputError(f"missing input(s) {', '.join(map(repr, missing))}")
        checked = {}
        for name, value in inputs.items():
            desc = engine.tensors[name]
            array = np.asarray(value)
            if array.dtype != desc.dtype:
                raise InputError(f"input '{name}': expected dtype {desc.dtype}, got {array.dtype}")
            if not engine.symbols and array.shape != desc.spec:
                raise InputError(f"input '{name}': expected shape {list(desc.spec)}, got "
                                 f"{list(array.shape)}")
            # (np.ascontiguousarray would turn a 0-d array into a 1-d one)
            checked[name] = array if array.flags.c_contiguous else np.ascontiguousarray(array)
        return checked

    def _bind(self, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, int]:
        """Symbol values from input shapes, each checked against the active profile."""
        engine = self.engine
        if not engine.symbols:
            return {}
        ranges = dict(engine.symbols)
        profiles = engine.manifest.get("profiles") or []
        if len(profiles) > 1:  # the active profile's own range
            for name, t in engine.tensors.items():
                entry = profiles[self._profile].get(name)
                if not t.is_input or not isinstance(entry, list) or len(entry) != 3 \
                        or any(len(s) != len(t.spec) for s in entry):
                    continue
                for axis, d in enumerate(t.spec):
                    if isinstance(d, str) and d in ranges:
                        lo, hi = int(entry[0][axis]), int(entry[2][axis])
                        ranges[d] = (max(lo, ranges[d][0]), ranges[d][1], min(hi, ranges[d][2]))
        specs = [(n, t.spec) for n, t in engine.tensors.items() if t.is_input]
        values = symbol_values(specs, shapes, ranges, InputError)
        for dim, size in engine.manifest.get("constraints") or []:
            if any(n in engine.data_symbols for n in dim_symbols(dim)):
                continue  # checked once its step has bound it (bind_data_symbols)
            if dim_value(dim, values) != size:
                raise InputError(f"'{dim}' is {dim_value(dim, values)}, but the model "
                                 f"broadcasts it against a dim of {size}: it must be {size}")
        return values

    # -- dynamic shapes (TensorRT's names) ---------------------------------------------------
    def set_input_shape(self, name: str, shape: Sequence[int]) -> bool:
        """The shape of an input for execute_async_v3 (within the active profile). Output
        shapes follow (`get_tensor_shape`) once every dynamic input has one. As in TensorRT, a
        shape the engine cannot take gives False (the reason goes to the engine's logger as an
        ERROR) and leaves the context's shapes as they were; an unknown name is an error."""
        desc = self.engine._desc(name)
        if not desc.is_input:
            raise InputError(f"'{name}' is an output; set_input_shape takes inputs")
        shape = int_dims(shape, f"set_input_shape('{name}')", InputError)
        trial = {**self._input_shapes, name: shape}
        try:  # this input alone now; all of them together (one value per symbol) once all set
            self._bind_partial(name, desc.spec, shape)
            done = all(n in trial for n in self.engine.input_names)
            values = self._bind(trial) if done else None
        except InputError as e:
            emit(self.engine.logger, Severity.ERROR, f"set_input_shape: {e}")
            return False
        with self._lock:
            self._input_shapes = trial
            self._values = values
            self._data_values = {}
        return True

    def infer_shapes(self) -> list[str]:
        """The inputs whose shapes are still needed before the outputs' shapes are known
        ([] once all are: TensorRT's `infer_shapes`)."""
        if self._values is not None:
            return []
        return [n for n in self.engine.input_names if n not in self._input_shapes]

    def _bind_partial(self, name: str, spec: tuple, shape: tuple[int, ...]) -> None:
        """One input's shape alone: its rank, static dims and symbols' ranges."""
        if len(spec) != len(shape) or any(isinstance(d, int) and d != a
                                          for d, a in zip(spec, shape, strict=False)):
            raise InputError(f"input '{name}': expected shape {list(spec)}, got {list(shape)}")
        for axis, (d, a) in enumerate(zip(spec, shape, strict=True)):
            if isinstance(d, str) and d in self.engine.symbols:
                lo, _, hi = self.engine.symbols[d]
                if not lo <= a <= hi:
                    raise InputError(f"input '{name}': dim {axis} ('{d}') is {a}, outside the "
                                     f"optimization profiles' range [{lo}, {hi}]")

    @property
    def all_binding_shapes_specified(self) -> bool:
        return self._values is not None

    def get_tensor_shape(self, name: str) -> Dims:
        """An I/O tensor's shape in this context: the set input shapes and what they give the
        outputs; -1 for a dim not yet known. A data-dependent dim (NonZero's length, ...) is
        known once a run has found it (TensorRT tells it to an output allocator)."""
        desc = self.engine._desc(name)
        if desc.is_input and name in self._input_shapes:
            return Dims(self._input_shapes[name])
        if self._values is None:
            return Dims(desc.shape)
        values = {**self._values, **self._data_values}
        return Dims(dim_value(d, values) if all(s in values for s in dim_symbols(d)) else -1
                    for d in desc.spec)

    @property
    def data_dependent_values(self) -> dict[str, int]:
        """The data-dependent lengths (NonZero's, ...) the last run found, by symbol (ember's:
        TensorRT tells them to an output allocator)."""
        return dict(self._data_values)

    def get_max_output_size(self, name: str) -> int:
        """The bytes an output takes at most (its data-dependent dims at their bounds), as
        TensorRT's: what to allocate for an output whose shape depends on the data."""
        desc = self.engine._desc(name)
        if desc.is_input:
            raise EmberError(f"get_max_output_size: '{name}' is an input")
        values = {**profile_values(self.engine.symbol_ranges, MAX),
                  **(self._values or {})}
        return int(np.prod(shape_value(desc.spec, values), dtype=np.int64)) * desc.dtype.itemsize

    def set_optimization_profile_async(self, profile_index: int, stream_handle: Any = 0) -> bool:
        """Choose the profile whose ranges bound this context's input shapes (one plan's kernels
        serve every profile; nothing is enqueued on the stream). As in TensorRT, input shapes
        already set that the profile cannot take give False (the reason logged as an ERROR) and
        keep the active profile; an index out of range is an error."""
        _check_profile_index(profile_index, self.engine.num_optimization_profiles)
        if not 0 <= profile_index < self.engine.num_optimization_profiles:
            raise EmberError(f"profile index {profile_index} out of range; the engine has "
                             f"{self.engine.num_optimization_profiles} profile(s)")
        previous, self._profile = self._profile, profile_index
        if self._values is not None and self.engine.symbols:
            try:  # the input shapes already set must fit the new profile
                values = self._bind(self._input_shapes)
            except InputError as e:
                self._profile = previous
                emit(self.engine.logger, Severity.ERROR,
                     f"set_optimization_profile_async({profile_index}): {e}")
                return False
            with self._lock:
                self._values = values
        return True

    @property
    def active_optimization_profile(self) -> int:
        return self._profile

    # -- TensorRT's bound-address path (CUDA) -------------------------------------------------
    def _cuda(self, what: str):
        if self.engine.device != "cuda":
            raise EmberError(f"{what} needs the CUDA executor; this engine runs on the CPU "
                             "(use execute() with numpy arrays)")
        return self._executor

    def set_tensor_address(self, name: str, ptr: int | np.ndarray) -> bool:
        """Bind the address of an I/O tensor's memory, used by execute_async_v3: a device
        address (an int) for a CUDA engine, a host address or a numpy array for a CPU engine.
        It must be 16-byte aligned (kernels read with vector loads); TensorRT asks for 256."""
        desc = self.engine._desc(name)
        if name in self._allocators:
            raise EmberError(f"set_tensor_address({name!r}): the output has an output "
                             "allocator, which gives its memory")
        if self.engine.device != "cuda":
            if isinstance(ptr, np.ndarray):
                if not (ptr.flags.c_contiguous and (desc.is_input or ptr.flags.writeable)):
                    raise EmberError(f"set_tensor_address({name!r}): the array must be "
                                     "C-contiguous" + ("" if desc.is_input else " and writable"))
                self._host_addresses[name] = ptr
                return True
            if isinstance(ptr, bool) or not isinstance(ptr, int) or ptr <= 0:
                raise EmberError(f"set_tensor_address({name!r}): a CPU engine takes a host "
                                 f"address (array.ctypes.data) or a numpy array, not {ptr!r}")
        ptr = int(ptr)
        if ptr % 16:
            raise EmberError(f"set_tensor_address({name!r}): address {ptr:#x} is not "
                             "16-byte aligned")
        if self.engine.device != "cuda":
            self._host_addresses[name] = ptr
            return True
        self._cuda("set_tensor_address").bind(desc.buffer, ptr, is_output=not desc.is_input)
        if not desc.is_input:
            self._bound_outputs.add(name)
        return True

    def set_output_allocator(self, name: str, allocator: Any) -> bool:
        """Give an output its memory from `allocator` (an IOutputAllocator) once a run of
        execute_async_v3 knows its size, instead of a bound address; None removes it."""
        desc = self.engine._desc(name)
        if desc.is_input:
            raise EmberError(f"set_output_allocator: '{name}' is an input")
        if allocator is None:
            self._allocators.pop(name, None)
            self._allocated.pop(name, None)
            return True
        def has(method: str) -> bool:
            return callable(getattr(allocator, method, None))

        if not has("notify_shape") or not (has("reallocate_output_async")
                                            or has("reallocate_output")):
            raise EmberError(f"set_output_allocator({name!r}): {type(allocator).__name__} is "
                             "not an IOutputAllocator (reallocate_output_async and "
                             "notify_shape)")
        if name in self._host_addresses or name in self._bound_outputs:
            raise EmberError(f"set_output_allocator({name!r}): the output has an address set "
                             "(set_tensor_address); an allocated output has none")
        self._allocators[name] = allocator
        return True

    def get_output_allocator(self, name: str) -> Any:
        self.engine._desc(name)
        return self._allocators.get(name)

    def _allocate(self, name: str, size: int, stream: Any) -> Any:
        """The memory `name`'s allocator gives for `size` bytes (an error names a refusal)."""
        allocator = self._allocators[name]
        last = self._allocated.get(name, 0)
        if callable(getattr(allocator, "reallocate_output_async", None)):
            # (IOutputAllocator's own calls reallocate_output, as TensorRT's does)
            memory = allocator.reallocate_output_async(name, last, size, 256, stream)
        else:
            memory = allocator.reallocate_output(name, last, size, 256)
        if memory is None or (not isinstance(memory, np.ndarray) and not memory and size):
            raise EmberError(f"the output allocator of '{name}' gave no memory for {size} "
                             "bytes")
        self._allocated[name] = memory
        return memory

    def get_tensor_address(self, name: str) -> int:
        if self.engine.device != "cuda":
            bound = self._host_addresses.get(self.engine._desc(name).name, 0)
            return bound.ctypes.data if isinstance(bound, np.ndarray) else bound
        return self._cuda("get_tensor_address").address(self.engine._desc(name).buffer)

    def execute_v2(self, bindings: Sequence[int]) -> bool:
        """Run to completion on the addresses `bindings` (one per I/O tensor, in
        `engine.get_tensor_name` order), as TensorRT's synchronous execute_v2."""
        names = list(self.engine.tensors)
        if not isinstance(bindings, Sequence):
            raise EmberError(f"execute_v2 takes a list of addresses, one per I/O tensor "
                             f"({', '.join(names)}), not {type(bindings).__name__}")
        if len(bindings) != len(names):
            raise EmberError(f"execute_v2: {len(bindings)} binding(s) for the engine's "
                             f"{len(names)} I/O tensors ({', '.join(names)})")
        for name, ptr in zip(names, bindings, strict=True):
            self.set_tensor_address(name, ptr)
        if self.engine.device != "cuda":
            return self._execute_host()
        from ember.runtime import cuda

        stream = cuda.Stream(self._executor.state.device)
        self.execute_async_v3(stream.handle)
        stream.synchronize()
        return True

    def _host_view(self, name: str, shape: tuple[int, ...], bound: Any = None) -> np.ndarray:
        """The bound host memory of an I/O tensor (else `bound`, an allocator's) as an array
        of `shape`."""
        desc = self.engine.tensors[name]
        if bound is None:
            bound = self._host_addresses.get(name)
        if bound is None:
            raise InputError(f"no address bound for '{name}': set_tensor_address first")
        count = int(np.prod(shape, dtype=np.int64))
        if isinstance(bound, np.ndarray):
            if bound.nbytes < count * desc.dtype.itemsize:
                raise InputError(f"the array bound for '{name}' holds {bound.nbytes} bytes; "
                                 f"{list(shape)} {desc.dtype} needs "
                                 f"{count * desc.dtype.itemsize}")
            flat = bound.reshape(-1).view(np.uint8)[:count * desc.dtype.itemsize]
        else:
            flat = np.ctypeslib.as_array(
                (ctypes.c_ubyte * (count * desc.dtype.itemsize)).from_address(bound))
        return flat.view(desc.dtype).reshape(shape)

    def _execute_host(self) -> bool:
        """A CPU engine's bound-address run: inputs read from, outputs written to host memory."""
        with self._lock:
            values = self._values
        if values is None:
            missing = [n for n in self.engine.input_names if n not in self._input_shapes]
            raise InputError(f"execute: set_input_shape first for the dynamic input(s) "
                             f"{', '.join(map(repr, missing))}")
        inputs = {n: self._host_view(n, tuple(self.get_tensor_shape(n)))
                  for n in self.engine.input_names}
        for name in self.engine.output_names:  # bound before the run, as TensorRT's
            if name not in self._allocators:
                self._host_view(name, (0,))
        for name, array in self.execute(inputs).items():
            memory = self._allocate(name, array.nbytes, 0) if name in self._allocators \
                else None
            np.copyto(self._host_view(name, array.shape, memory), array)
            if memory is not None:
                self._allocators[name].notify_shape(name, Dims(array.shape))
        return True

    def execute_async_v3(self, stream_handle: Any) -> bool:
        """Enqueue the plan on a CUDA stream (a CUstream or its integer handle), reading and
        writing the bound device addresses; returns without waiting for the GPU (unless a
        profiler is set: reading the step times waits). A CPU engine runs on the bound host
        memory and has finished when this returns (the stream has nothing left to wait for)."""
        if self.engine.device != "cuda":
            return self._execute_host()
        executor = self._cuda("execute_async_v3")
        profiler = self._profiler
        with self._lock:
            values = self._values
            if values is None:
                missing = [n for n in self.engine.input_names if n not in self._input_shapes]
                raise InputError(f"execute_async_v3: set_input_shape first for the dynamic "
                                 f"input(s) {', '.join(map(repr, missing))}")
            times: list[float] | None = None if profiler is None else []
            executor.run_async(stream_handle, values, times)
            self._data_values = self._found(executor)
            for name in self._allocators:  # their sizes are known now: copied after the run
                shape = tuple(self.get_tensor_shape(name))
                size = int(np.prod(shape, dtype=np.int64)) * self.engine.tensors[name].dtype \
                    .itemsize
                memory = self._allocate(name, size, stream_handle)
                executor.copy_output(self.engine.tensors[name].buffer, int(memory), size,
                                     stream_handle)
                self._allocators[name].notify_shape(name, Dims(shape))
        if times is not None:
            self._report(profiler, times)
        return True

    def _found(self, executor: Any) -> dict[str, int]:
        """The data-dependent lengths the executor's last run found."""
        return {k: executor.values[k] for k in self.engine.data_symbols}

    def execute(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """numpy in, numpy out (by name)."""
        checked = self._check_inputs(inputs)
        values = self._bind({n: a.shape for n, a in checked.items()})
        profiler = self._profiler
        with self._lock:  # one run at a time per context: its arena is not shared
            if profiler is None:
                result = self._executor.run(checked, values)
                self._data_values = self._found(self._executor)
                return result
            times: list[float] = []
            result = self._executor.run(checked, values, times)
            self._data_values = self._found(self._executor)
        self._report(profiler, times)
        return result


_NOT_RUNTIME = {
    "max_threads": "not implemented", "DLA_core": "ember has no DLA",
    "engine_host_code_allowed": "plans hold no host code", "error_recorder": "errors are raised "
    "as ember.errors exceptions", "gpu_allocator": "contexts allocate their own memory",
    "temporary_directory": "not implemented", "tempfile_control_flags": "not implemented",
}


class Runtime(ContextManaged):
    """Loads plans: `Runtime(logger).deserialize_cuda_engine(plan)` as in TensorRT.

    `device`: "auto" (the GPU when the plan has kernels for the one present, else the CPU),
    "cuda" or "cpu". ember's older spelling `Runtime("cuda")` (the device first) still works.
    `allow_rejit`: run a plan built for another GPU arch by JIT-compiling its PTX."""

    def __init__(self, logger: ILogger | str | None = None, *, device: str | None = None,
                 allow_rejit: bool = False) -> None:
        if isinstance(logger, str):
            if device is not None:
                raise EmberError(f"Runtime({logger!r}, device={device!r}): the first argument "
                                 "is the logger (TensorRT's); give the device once, as device=")
            logger, device = None, logger
        object.__setattr__(self, "logger", check_logger(logger, "Runtime"))
        object.__setattr__(self, "device", device or "auto")
        object.__setattr__(self, "allow_rejit", allow_rejit)

    def __setattr__(self, name: str, value: Any) -> None:
        why = _NOT_RUNTIME.get(name, "no such setting")
        raise UnsupportedError(f"Runtime.{name} is not implemented ({why}); setting it would "
                               "do nothing")

    @property
    def num_DLA_cores(self) -> int:
        return 0

    def deserialize_cuda_engine(self, plan: bytes | bytearray | memoryview) -> Engine:
        """An Engine from plan bytes (IHostMemory, bytes, a buffer). A bad plan is a PlanError
        (TensorRT returns None), logged as an ERROR first."""
        def read() -> Plan:
            try:
                data = bytes(plan) if not isinstance(plan, str) else None
            except TypeError:
                data = None
            if data is None:
                raise PlanError(f"deserialize_cuda_engine takes the plan's bytes (or a buffer), "
                                f"not {type(plan).__name__}; Runtime.load takes a path")
            return read_plan(data)

        return self._engine(read)

    def load(self, path: str | os.PathLike) -> Engine:
        """An Engine from a plan file (read into memory and verified once)."""
        return self._engine(lambda: read_plan(path))

    def _engine(self, read) -> Engine:
        try:
            return Engine(read(), self.device, allow_rejit=self.allow_rejit, logger=self.logger)
        except EmberError as e:
            emit(self.logger, Severity.ERROR, str(e))
            raise
