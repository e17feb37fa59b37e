"""The CUDA executor: runs a plan's steps as the CUDA kernels compiled into it.

Per engine (shared by its contexts): the loaded modules and the weights, uploaded once. Per
executor (one per ExecutionContext): its activation arena, its input/output device buffers, a
stream and every launch's packed arguments, so `run()` only copies inputs in, launches, and copies
outputs out. Views alias their base's device address. Imports: numpy, the standard library,
ember.errors and ember.runtime only (DESIGN §5).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ember.errors import CudaError, PlanError
from ember.runtime import cuda, tensor_maps
from ember.runtime.engine import workspace_layout
from ember.runtime.host_runs import host_runs
from ember.runtime.plan import check_target
from ember.runtime.symbolic import (
    MAX,
    bind_data_symbols,
    check_expr,
    expr_value,
    profile_values,
    shape_value,
    substitute_shapes,
)
from ember.runtime.tensor_maps import Im2colMap, TensorMap

if TYPE_CHECKING:
    from ember.runtime.engine import Engine

_shared_lock = threading.Lock()


def _nbytes(buffer: Mapping[str, Any], values: Mapping[str, int]) -> int:
    """A buffer's bytes at these symbol values (the max ones to size memory)."""
    return math.prod(shape_value(buffer["shape"], values)) * np.dtype(buffer["dtype"]).itemsize


class _EngineState:
    """What every context of one engine shares on the GPU: modules, functions, weights."""

    def __init__(self, engine: Engine) -> None:
        m = engine.manifest
        self.device = cuda.default_device()
        target = m.get("target") or {}
        rejit = check_target(target, self.device.arch,
                             allow_rejit=bool(getattr(engine, "allow_rejit", False)))
        if rejit:  # said once: the engine's modules load once
            from ember.runtime.logger import Severity, emit

            emit(engine.logger, Severity.WARNING, rejit_message(target, self.device.arch))
        plan = engine.plan
        names = plan.section_names
        cubin = plan.section("cubin") if "cubin" in names else None
        ptx = plan.section("ptx") if "ptx" in names else None
        self.functions: dict[str, cuda.Function] = {}
        self.modules: list[cuda.Module] = []
        for k in m.get("kernels") or []:
            name = k.get("name")
            if not isinstance(name, str) or not name.isidentifier():
                raise PlanError(f"manifest: kernel entry {k!r} has a bad name")
            image = None if rejit else _slice(cubin, k, "cubin", name)
            text = _slice(ptx, k, "ptx", name) if ptx is not None and k.get("ptx_size") else None
            module = cuda.Module.load(image, text, device=self.device, name=f"kernel {name}")
            self.modules.append(module)
            self.functions[name] = module.function(name)
        weights = engine.weights
        self.weights = cuda.DeviceBuffer(len(weights) if weights is not None else 0, self.device)
        if weights is not None and len(weights):
            self.weights.upload(np.frombuffer(weights, dtype=np.uint8))

    @staticmethod
    def of(engine: Engine) -> _EngineState:
        with _shared_lock:
            state = getattr(engine, "_cuda_state", None)
            if state is None:
                state = _EngineState(engine)
                engine._cuda_state = state  # type: ignore[attr-defined]
            return state


def rejit_message(target: Mapping[str, Any], device_arch: str) -> str:
    """What loading a plan whose CUBIN is for another arch says: its PTX is JIT-compiled."""
    if target.get("compatibility"):
        built = f"{target['compatibility']} ({target.get('arch')} code)"
    else:
        built = f"built for {target.get('arch')} only, loaded with allow_rejit"
    return (f"the plan is {built}: its PTX is JIT-compiled for this {device_arch} GPU as it "
            "loads (rebuild for this GPU to load without it)")


def _reinterpret(array: np.ndarray, dtype: np.dtype, shape: tuple[int, ...],
                 what: str) -> np.ndarray:
    """A host tensor as another buffer that views the same bytes sees it (`what`: the step
    reading it, for the error where it holds fewer bytes than that view needs)."""
    if array.dtype == dtype and array.shape == shape:
        return array
    need = math.prod(shape) * dtype.itemsize
    if array.nbytes < need:
        raise CudaError(f"{what}: its input holds {array.nbytes} bytes on the host where "
                        f"{dtype}{list(shape)} needs {need}")
    return array.reshape(-1).view(np.uint8)[:need].view(dtype).reshape(shape)


def _slice(section: memoryview | None, kernel: Mapping[str, Any], key: str,
           name: str) -> bytes:
    if section is None:
        raise PlanError(f"the plan has no '{key}' section for kernel {name}")
    off, size = kernel.get(f"{key}_offset"), kernel.get(f"{key}_size")
    if not (isinstance(off, int) and isinstance(size, int) and 0 <= off
            and off + size <= len(section)):
        raise PlanError(f"manifest: kernel {name} has a bad {key} range")
    return bytes(section[off:off + size])


class _ExternalStream:
    """A caller's CUstream (a handle), enough to record events on and wait for them."""

    def __init__(self, handle: Any, device: cuda.Device) -> None:
        self.handle = handle if isinstance(handle, cuda.cu.CUstream) else cuda.cu.CUstream(
            int(handle))
        self.device = device

    def wait_event(self, event: cuda.Event) -> None:
        self.device.set_current()
        cuda.check(cuda.cu.cuStreamWaitEvent(self.handle, event.handle, 0), "cuStreamWaitEvent")


@dataclass
class _HostStep:
    """A step without a CUDA kernel (per-layer CPU fallback): run with numpy between launches.
    `params`, and the shapes, are the current binding's (see CudaExecutor._bind)."""

    template: str
    params: Mapping[str, Any]
    inputs: list[tuple[int, np.dtype, tuple[int, ...]]]   # (buffer id, dtype, shape)
    outputs: list[tuple[int, np.dtype, tuple[int, ...]]]
    what: str
    step: Mapping[str, Any]


@dataclass
class _Launch:
    function: cuda.Function
    grid: tuple[int, ...]
    block: tuple[int, ...]
    shared: int
    args: cuda.PackedArgs
    what: str
    grid_exprs: tuple[Any, ...] = ()   # a symbolic step's grid, evaluated per binding
    sizes: tuple[str, ...] = ()        # symbols passed after the pointers, in order
    first_size: int = 0                # index of the first size argument
    # tensor maps: (argument index, map, buffer it reads), encoded over the buffer's address
    tmaps: tuple[tuple[int, TensorMap | Im2colMap, int], ...] = ()
    pdl: bool = False  # the kernel waits for the one before it: it may launch programmatically

    @property
    def empty(self) -> bool:
        """A symbolic launch with no blocks at this binding (a static one always has some)."""
        return bool(self.grid_exprs) and min(self.grid) <= 0


class CudaExecutor:
    def __init__(self, engine: Engine, *, cuda_graph: bool = False, pdl: bool = True) -> None:
        self.engine = engine
        # replay the launches as one CUDA graph (captured at the first run, again after a bind);
        # plans with host steps cannot be captured and launch one by one
        self.cuda_graph = cuda_graph
        # launch the kernels whose records allow it programmatically (each may start before
        # the one ahead of it has finished, and waits for it itself); not in profiled runs
        self.pdl = pdl
        self._graph: cuda.GraphExec | None = None
        self._events: list[cuda.Event] | None = None  # made at the first profiled run
        self.state = _EngineState.of(engine)
        dev = self.state.device
        self.stream = cuda.Stream(dev)
        self.arena = cuda.DeviceBuffer(engine.arena_bytes, dev)
        self._owned: list[cuda.DeviceBuffer] = []
        self._maxima = profile_values(engine.symbol_ranges, MAX)
        self.ptrs = self._addresses()
        self.workspace, self._counter_offsets = self._workspace()
        # each step's kernel variants for small symbol values ((bounds, launch), first match
        # wins; else the step's own launch): `_bind` puts the one chosen in self.launches
        self._variants: dict[int, list[tuple[dict[str, int], _Launch]]] = {}
        self._mains = [self._launch(i, s) for i, s in enumerate(engine.steps)]
        self.launches = list(self._mains)
        self._binding: tuple[int, ...] | None = None
        self._values: Mapping[str, int] = {}
        for name, (index, _, _) in engine.data_symbols.items():
            if not isinstance(self._mains[index], _HostStep):
                raise PlanError(f"step {index} ({engine.steps[index].get('name')}) binds the "
                                f"data-dependent symbol {name!r} but runs as a CUDA kernel: "
                                "only a host step can")
        if not engine.symbol_ranges:
            self._bind({})
        # where each buffer's address is used, so a bound address can replace it in place
        self._roots = [self._root(j) for j in range(len(engine.buffers))]
        self._arg_uses: dict[int, list[tuple[cuda.PackedArgs, int]]] = {}
        self._map_users: dict[int, list[_Launch]] = {}  # root buffer -> launches mapping it
        self._copy_out: dict[int, int] = {}  # output buffer -> bound address to copy it to
        self._bound_by: dict[int, int] = {}   # root buffer -> the I/O buffer bound onto it
        for i, (ln, step) in enumerate(zip(self._mains, engine.steps, strict=True)):
            if isinstance(ln, _Launch):
                for each in (ln, *(v for _, v in self._variants.get(i, []))):
                    for k, j in enumerate((*step["inputs"], *step["outputs"])):
                        self._arg_uses.setdefault(self._roots[j], []).append((each.args, k))
                    for root in {self._roots[j] for _, _, j in each.tmaps}:
                        self._map_users.setdefault(root, []).append(each)
        self.host_steps = sum(isinstance(ln, _HostStep) for ln in self.launches)
        # the runs of consecutive host steps, by first step: each copies only at its edges
        outputs = [t.buffer for t in engine.tensors.values() if not t.is_input]
        self._host_runs = {run.steps[0]: run
                           for run in host_runs(engine.steps, engine.buffers, outputs)}

    def _workspace(self) -> tuple[cuda.DeviceBuffer, dict[int, int]]:
        """Zeroed scratch for the steps that ask for it (split-K), laid out by
        `engine.workspace_layout`. Returns the buffer and each step's counter offset in it."""
        offsets, self._shared_offset, total = workspace_layout(self.engine.steps)
        buf = cuda.DeviceBuffer(max(total, 1), self.state.device)
        buf.zero(self.stream)
        self.stream.synchronize()  # whatever stream a run is issued on sees the zeros
        return buf, offsets

    def _addresses(self) -> list[int]:
        engine, dev = self.engine, self.state.device
        wsize = self.state.weights.nbytes
        ptrs: list[int] = []
        for i, b in enumerate(engine.buffers):
            kind, n = b["kind"], _nbytes(b, self._maxima)
            if kind == "arena":
                off = b.get("offset")
                if not isinstance(off, int) or off < 0 or off + n > engine.arena_bytes:
                    raise PlanError(f"buffer #{i} lies outside the arena")
                ptrs.append(self.arena.ptr + off)
            elif kind == "weight":
                off = b.get("offset")
                if not isinstance(off, int) or off < 0 or off + n > wsize:
                    raise PlanError(f"buffer #{i} lies outside the weights section")
                ptrs.append(self.state.weights.ptr + off)
            elif kind == "view":
                ptrs.append(ptrs[b["base"]])
            else:  # an input: a buffer of this executor until an address is bound
                buf = cuda.DeviceBuffer(max(n, 1), dev)
                self._owned.append(buf)
                ptrs.append(buf.ptr)
        return ptrs

    def _host_step(self, index: int, step: Mapping[str, Any]) -> _HostStep:
        from ember.runtime import cpu_kernels

        template = step.get("template")
        if template not in cpu_kernels.KERNELS:
            raise PlanError(f"step {index} ({step.get('name')}): unknown template {template!r}")
        if template == "plugin":  # a plugin without a CUDA kernel: this process's reference
            from ember.runtime import plugins

            plugins.check_reference(step, f"step {index} ({step.get('name')}, on the host)")
        return _HostStep(template, step["params"], [], [],
                         f"step {index} ({step.get('name')}, on the host)", step)

    def _launch(self, index: int, step: Mapping[str, Any]) -> _Launch | _HostStep:
        if step.get("device") == "cpu":
            return self._host_step(index, step)
        launch = step.get("cuda")
        main = self._kernel_launch(index, step, launch)
        variants = launch.get("variants", [])  # type: ignore[union-attr]
        if not isinstance(variants, list):
            raise PlanError(f"step {index} ({step.get('name')}): bad kernel variants")
        for v in variants:
            when = v.get("when") if isinstance(v, Mapping) else None
            if not isinstance(when, Mapping) or not when or not all(
                    z in self.engine.symbols and isinstance(t, int) and not isinstance(t, bool)
                    for z, t in when.items()):
                raise PlanError(f"step {index} ({step.get('name')}): a kernel variant has a "
                                f"bad 'when' {when!r}")
            self._variants.setdefault(index, []).append(
                (dict(when), self._kernel_launch(index, step, v)))
        return main

    def _kernel_launch(self, index: int, step: Mapping[str, Any], launch: Any) -> _Launch:
        name = step.get("name")
        if not isinstance(launch, Mapping) or launch.get("kernel") not in self.state.functions:
            raise PlanError(f"step {index} ({name}): no CUDA kernel in the plan for template "
                            f"{step.get('template')!r}")
        kernel = launch["kernel"]
        symbols = self.engine.symbol_ranges
        what = f"step {index} ({name}, kernel {kernel})"
        try:
            grid_exprs = tuple(launch["grid"])
            if not 1 <= len(grid_exprs) <= 3:
                raise ValueError("grid")
            for g in grid_exprs:
                check_expr(g, symbols, f"{what}'s grid")
            block = tuple(int(v) for v in launch["block"])
            shared = int(launch.get("shared", 0))
            workspace = int(launch.get("workspace", 0))
            sizes = tuple(launch.get("sizes", ()))
        except (KeyError, TypeError, ValueError) as e:
            raise PlanError(f"{what}: bad launch dimensions") from e
        if any(not isinstance(z, str) or z not in symbols for z in sizes):
            raise PlanError(f"{what}: its size arguments {list(sizes)} name unknown symbols")
        ptrs = [("ptr", self.ptrs[j]) for j in (*step["inputs"], *step["outputs"])]
        if workspace:  # split-K: this step's counters, then the shared partial tiles
            ptrs.append(("ptr", self.workspace.ptr + self._counter_offsets[index]))
            ptrs.append(("ptr", self.workspace.ptr + self._shared_offset))
        buffers = (*step["inputs"], *step["outputs"])
        try:
            maps = [TensorMap.from_json(t, f"tensor map #{k} of {what}")
                    for k, t in enumerate(launch.get("tmaps", []))]
        except (PlanError, TypeError) as e:
            raise PlanError(f"{what}: bad tensor maps ({e})") from None
        if any(t.operand >= len(buffers) for t in maps):
            raise PlanError(f"{what}: a tensor map reads an operand the step does not have")
        for t in maps:  # the copy engine reads every row the map spans: within the buffer
            have = _nbytes(self.engine.buffers[buffers[t.operand]], self._maxima)
            if t.reach() > have:
                raise PlanError(f"{what}: a tensor map spans {t.reach()} bytes of operand "
                                f"{t.operand}, which has {have}")
        tmaps = tuple((len(ptrs) + k, t, buffers[t.operand]) for k, t in enumerate(maps))
        ptrs += [("tmap", tensor_maps.encode(t, self.ptrs[j], what)) for _, t, j in tmaps]
        first_size = len(ptrs)
        args = cuda.pack_args([*ptrs, *(("i32", 0) for _ in sizes)])
        function = self.state.functions[kernel]
        if shared > 48 * 1024:
            function.set_max_dynamic_shared(shared)
        static = all(isinstance(g, int) for g in grid_exprs)
        return _Launch(function, grid_exprs if static else (1,), block, shared, args, what,
                       () if static else grid_exprs, sizes, first_size, tmaps,
                       launch.get("pdl") is True)  # (the manifest schema checked it)

    def _bind(self, values: Mapping[str, int]) -> None:
        """Make the launches ready for these symbol values (once per new binding): each
        symbolic step's grid and size arguments, each host step's shapes and params. A
        captured CUDA graph holds the old ones and is captured again."""
        key = tuple(values[s] for s in self.engine.symbol_ranges)
        if key == self._binding:
            return
        # each step's kernel for these values, then every grid: a binding that fails leaves
        # the launches as they were
        chosen = list(self.launches)
        for i, options in self._variants.items():
            chosen[i] = next((v for when, v in options
                              if all(values[z] <= t for z, t in when.items())), self._mains[i])
        grids = {}
        for i, ln in enumerate(chosen):
            if isinstance(ln, _Launch) and ln.grid_exprs:
                grid = tuple(expr_value(g, values) for g in ln.grid_exprs)
                if max(grid) > 2**31 - 1 or (len(grid) > 1 and max(grid[1:]) > 65535):
                    raise PlanError(f"{ln.what}: grid {grid} at {dict(values)} is too large")
                grids[i] = grid
        self._binding = None
        self.launches = chosen
        buffers = self.engine.buffers
        for i, ln in enumerate(self.launches):
            if isinstance(ln, _HostStep):
                step = ln.step

                def desc(j: int) -> tuple[int, np.dtype, tuple[int, ...]]:
                    return j, np.dtype(buffers[j]["dtype"]), shape_value(buffers[j]["shape"],
                                                                         values)

                ln.inputs = [desc(j) for j in step["inputs"]]
                ln.outputs = [desc(j) for j in step["outputs"]]
                ln.params = substitute_shapes(step["params"], values) if values else step["params"]
                continue
            if ln.grid_exprs:
                ln.grid = grids[i]
            for k, z in enumerate(ln.sizes):
                ln.args.set(ln.first_size + k, values[z])
        self._binding, self._values = key, dict(values)
        if self._graph is not None:
            self._graph.close()
            self._graph = None

    @property
    def values(self) -> Mapping[str, int]:
        """The symbol values of the last run (its data-dependent lengths too)."""
        return self._values

    def _start(self, values: Mapping[str, int]) -> Mapping[str, int]:
        """A run's first binding: each data-dependent symbol at its bound until its step
        binds it (the values themselves in a plan without any: nothing copied per run)."""
        if not self.engine.data_symbols:
            return values
        return {**values, **{k: self._maxima[k] for k in self.engine.data_symbols}}

    def _run_on_host(self, first: int, after_step: Callable[[int], None] | None = None
                     ) -> int:
        """Run the host run that starts at step `first` (runtime/host_runs.py): tensors pass
        between its steps on the host; what it reads comes from the device (weights from the
        plan) before the step that first reads it, what later steps read goes back after its
        last step. `after_step(k)` is called after each step. Returns the next step's index."""
        from ember.runtime import cpu_kernels

        run = self._host_runs[first]
        buffers = self.engine.buffers
        host: dict[int, np.ndarray] = {}  # root buffer -> its contents on the host
        for k in run.steps:
            step = cast(_HostStep, self.launches[k])  # a run is of host steps only
            args = []
            copied = False
            for j, dtype, shape in step.inputs:
                r = self._roots[j]
                if r in host:
                    args.append(_reinterpret(host[r], dtype, shape, step.what))
                elif buffers[r]["kind"] == "weight":
                    args.append(self.engine.weight_array(buffers[r]["offset"], dtype, shape))
                else:
                    # stream-ordered copies: the stream is non-blocking, so it does not wait
                    # for copies issued on the legacy default stream
                    array = host[r] = np.empty(shape, dtype=dtype)
                    cuda.copy_dtoh(array, self.ptrs[j], self.stream)
                    args.append(array)
                    copied = True
            if copied:
                self.stream.synchronize()
            results = cpu_kernels.call(step.template, args, step.params, step.what, CudaError)
            if step.step.get("binds"):  # the launches after it take the lengths it found
                values = dict(self._values)
                bind_data_symbols(step.step, results, values, self.engine.symbol_ranges,
                                  self.engine.manifest.get("constraints") or [], step.what,
                                  CudaError)
                self._bind(values)
            for (j, dtype, shape), value in zip(step.outputs, results, strict=True):
                fit = cpu_kernels.fitted(value, shape, step.params, step.what, CudaError)
                host[self._roots[j]] = np.ascontiguousarray(fit, dtype=dtype)
            if after_step is not None and k != run.steps[-1]:
                after_step(k)
        for r in run.writes:
            cuda.copy_htod(self.ptrs[r], host[r], self.stream)
        if after_step is not None:
            after_step(run.steps[-1])
        return run.steps[-1] + 1

    def _root(self, j: int) -> int:
        while self.engine.buffers[j]["kind"] == "view":
            j = self.engine.buffers[j]["base"]
        return j

    def bind(self, buffer: int, ptr: int, *, is_output: bool) -> None:
        """Use device address `ptr` for an I/O tensor's buffer from now on. The buffer it views
        (or it) is rebound everywhere; an output that views an input or a weight is copied out
        to `ptr` after the launches instead."""
        root = self._roots[buffer]
        shared = self._bound_by.get(root, buffer) != buffer  # another output owns this root
        if is_output and (shared or self.engine.buffers[root]["kind"] in ("input", "weight")):
            self._copy_out[buffer] = ptr
            return
        self._bound_by[root] = buffer
        for j, r in enumerate(self._roots):
            if r == root:
                self.ptrs[j] = ptr
        for args, k in self._arg_uses.get(root, []):
            args.set(k, ptr)
        for ln in self._map_users.get(root, []):  # tensor maps hold the address too
            for k, tmap, j in ln.tmaps:
                if self._roots[j] == root:
                    ln.args.set(k, tensor_maps.encode(tmap, self.ptrs[j], ln.what))
        if self._graph is not None:  # a captured graph holds the old addresses
            self._graph.close()
            self._graph = None

    def copy_output(self, buffer: int, ptr: int, nbytes: int, stream_handle: Any) -> None:
        """Copy `nbytes` of an output buffer (as the last run left it) to device address `ptr`
        on the caller's stream (an output allocator's memory)."""
        if nbytes:
            stream = _ExternalStream(stream_handle, self.state.device)
            cuda.check(cuda.cu.cuMemcpyDtoDAsync(ptr, self.address(buffer), nbytes,
                                                 stream.handle),
                       f"copy of output buffer #{buffer} to its allocated memory")

    def address(self, buffer: int) -> int:
        return self._copy_out.get(buffer, self.ptrs[buffer])

    def _launch_all(self, timed: bool = False) -> None:
        if timed:
            self._launch_timed()
            return
        if self.cuda_graph and not self.host_steps:
            if self._graph is None:
                cuda.begin_capture(self.stream)
                try:
                    self._launch_each()
                finally:
                    self._graph = cuda.end_capture(self.stream)
            self._graph.launch(self.stream)
            return
        self._launch_each()

    def _launch_each(self) -> None:
        i = 0
        while i < len(self.launches):  # a host step that binds a symbol rebinds them
            ln = self.launches[i]
            if isinstance(ln, _HostStep):
                i = self._run_on_host(i)
                continue
            if not ln.empty:
                cuda.launch(ln.function, ln.grid, ln.block, ln.shared, self.stream, ln.args,
                            what=ln.what, programmatic=self.pdl and ln.pdl)
            i += 1

    def _launch_timed(self) -> None:
        """Every step between two timing events, launched one by one even in a CUDA-graph
        context (events recorded inside a replayed graph would not time its steps)."""
        events = self._events
        if events is None:
            dev = self.state.device
            events = self._events = [cuda.Event(dev) for _ in range(len(self.launches) + 1)]
        stream = self.stream
        events[0].record(stream)
        i = 0
        while i < len(self.launches):
            ln = self.launches[i]
            if isinstance(ln, _HostStep):  # a host run records each of its steps' ends
                i = self._run_on_host(i, lambda k: events[k + 1].record(stream))
                continue
            if not ln.empty:
                cuda.launch(ln.function, ln.grid, ln.block, ln.shared, stream, ln.args,
                            what=ln.what)
            events[i + 1].record(stream)
            i += 1

    def _step_times(self, times: list[float]) -> None:
        """Append each step's milliseconds from the last timed launch (waits for it)."""
        events = self._events or []
        times.extend(a.elapsed_ms(b) for a, b in pairwise(events))

    def run_async(self, stream_handle: int, values: Mapping[str, int],
                  times: list[float] | None = None) -> None:
        """Run on bound device addresses at these symbol values, ordered after and before the
        work of the caller's stream (through events); no copies and, without host steps, no
        host wait. With `times` (profiling) each step is timed, which waits for the GPU."""
        self._bind(self._start(values))
        before, after = cuda.Event(timing=False), cuda.Event(timing=False)
        external = _ExternalStream(stream_handle, self.state.device)
        before.record(external)
        self.stream.wait_event(before)
        self._launch_all(times is not None)
        for buffer, ptr in self._copy_out.items():
            n = _nbytes(self.engine.buffers[buffer], self._values)
            if n:
                cuda.check(cuda.cu.cuMemcpyDtoDAsync(ptr, self.ptrs[buffer], n,
                                                     self.stream.handle),
                           f"copy of output buffer #{buffer} to its bound address")
        after.record(self.stream)
        external.wait_event(after)
        if times is not None:
            self._step_times(times)

    def run(self, inputs: Mapping[str, np.ndarray], values: Mapping[str, int],
            times: list[float] | None = None) -> dict[str, np.ndarray]:
        """Copy in, launch, copy out at these symbol values; with `times` (profiling), append
        each step's ms."""
        self._bind(self._start(values))
        stream = self.stream
        engine = self.engine
        for name, d in engine.tensors.items():
            if d.is_input:
                cuda.copy_htod(self.ptrs[d.buffer], inputs[name], stream)
        self._launch_all(times is not None)
        results: dict[str, np.ndarray] = {}
        for name, d in engine.tensors.items():
            if not d.is_input:
                out = np.empty(shape_value(d.spec, self._values), dtype=d.dtype)
                cuda.copy_dtoh(out, self.ptrs[d.buffer], stream)
                results[name] = out
        try:
            stream.synchronize()
        except CudaError as e:
            raise CudaError(f"running the plan's {len(self.launches)} steps: {e}") from None
        if times is not None:
            self._step_times(times)
        return results
