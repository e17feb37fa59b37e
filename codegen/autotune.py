"""Autotuning: time each GEMM step's candidate tactics on the GPU and keep the fastest.

A template that has choices exposes `tactics(params) -> [tactic, ...]` (best estimated first);
each tactic is a small dict the template reads back from `params["tactic"]`. For every such step
with two or more candidates, every candidate kernel is compiled (NVRTC, in parallel, cached),
launched on random inputs in device buffers of the step's shapes, and timed with CUDA events;
the fastest is returned (`Tuning.choices`: select-tactics sets them on the kernel ops, so
emit-cuda emits them and the plan records them). A candidate is chosen only if it computes
what the others do: its output (poisoned with NaN before it runs) is compared with that of the
first candidate that ran (the cost model's choice); one with unwritten or non-finite elements,
or more than `AGREEMENT` rel-L2 away, is rejected and counted. Results are kept in the build's
timing cache (`codegen/timing_cache.py`: keyed by kernel signature and by GPU, compute
capability, NVRTC and ember versions), so rebuilding a model times nothing twice. Each
candidate's outcome (its time, or why it has none) is kept with the choice (`Tuning.times`, and
in the cache entry): select-tactics records it on the kernel op (`tactic_times_us`), and
`ember inspect PLAN --explain LAYER` shows what the choice beat, by how much.
`time_kernels` times whole kernels (the fastest of their tactics) for choose-formats, which
compares a kernel's formats by their times. Both report their progress (`codegen/progress.py`):
a step per candidate kernel compiled and per kernel timed.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ember.codegen import progress
from ember.codegen.emit_cuda import VARIANT_TEMPLATES, emit_step, small_subsets
from ember.codegen.nvrtc import compile_many
from ember.codegen.templates import TEMPLATES, KernelSpec, template_module
from ember.codegen.timing_cache import Session, environment, kernel_key
from ember.errors import CompileError, EmberError
from ember.runtime.cpu_kernels.common import stored_dtype
from ember.runtime.manifest import decode
from ember.runtime.symbolic import params_symbolic, substitute_shapes

WARMUP, REPEATS = 2, 10
# a candidate is timed over about this many ms of launches (at most REPEATS, at least one): a
# slow one (an int8 NCHW direct conv: tens of ms) does not take seconds; one whose first launch
# already takes SLOWER times the best so far, and over CUT_MS (a single short launch between
# two events may read long), is not timed further (it cannot win)
BUDGET_MS, SLOWER, CUT_MS = 5.0, 2.0, 0.05
# a kernel whose first launch took less than this is timed as a captured CUDA graph of GRAPHED
# launches: launched one Python call at a time, a kernel shorter than the host's ~5-10 us a
# launch leaves the GPU waiting for the host, and the loop times the host (a 5 us layer norm
# read 8.4-10.4 us); the model itself runs as a graph
GRAPH_BELOW_MS, GRAPHED = 0.05, 50
# random operands repeat a pool of this many seeded values (drawn once): drawing tens of
# millions of normal values per step was most of a ResNet-50 build's tuning time
POOL = 1 << 20
# how far (rel-L2) a candidate's output may be from the reference candidate's: tactics differ in
# summation order and in TF32 / half rounding, never by more than this on random inputs
AGREEMENT = 1e-2
INT8_EPILOGUE = 1e-4  # an INT8 GEMM's candidates with a float epilogue (see _tolerance)


def _tactics(step: dict[str, Any], arch: str) -> list[dict]:
    template = step.get("template")
    if template not in TEMPLATES or step.get("device") == "cpu":
        return []
    pick = getattr(template_module(template), "tactics", None)
    return pick(decode(step["params"]), arch) if pick else []


def _timing_points(step: dict[str, Any], symbols: dict) -> list[tuple[dict[str, Any], tuple]]:
    """(the step as timed, where in its params the tactic goes). A step with symbolic dims is
    timed as a static kernel at the profile's opt shapes ("tactic", which its kernel uses), and
    a conv/matmul also with each set of its symbols at their min ("tactic_small"[set], for its
    small-shape kernels, see emit_cuda.small_variants)."""
    if not symbols or not params_symbolic(step["params"]):
        return [(step, ("tactic",))]
    opt = {k: v[1] for k, v in symbols.items()}
    points = [(opt, ("tactic",))]
    if step.get("template") in VARIANT_TEMPLATES:
        for subset in small_subsets(step["params"], symbols):
            points.append(({**opt, **{k: symbols[k][0] for k in subset}},
                           ("tactic_small", ",".join(subset))))
    return [(dict(step, params=substitute_shapes(step["params"], values)), slot)
            for values, slot in points]


@dataclass
class Tuning:
    """The autotuner's result: counts (steps tuned, kernels timed, steps answered from the
    timing cache, candidates that failed to launch or were rejected) and the choices, in the
    order they were made: (step index, where in its params the tactic goes, the tactic)."""

    stats: dict[str, int] = field(
        default_factory=lambda: {"steps": 0, "timed": 0, "cached": 0, "failed": 0,
                                 "rejected": 0})
    choices: list[tuple[int, tuple, dict]] = field(default_factory=list)
    # (step index, slot) -> each candidate's outcome, in the candidates' order: (tactic, its
    # time in microseconds, or "failed" / "rejected" / "did not compile" / "from the timing
    # cache" where there is no time); `ember inspect --explain` shows what the choice beat
    times: dict[tuple[int, tuple], list[tuple[dict, float | str]]] = field(default_factory=dict)


def _emits(step: dict[str, Any], tactic: dict, symbols: dict) -> bool:
    try:
        emit_step(dict(step, params={**step["params"], "tactic": tactic}),
                  {k: tuple(v) for k, v in symbols.items()})
    except EmberError:
        return False
    return True


def _buffers(step: dict[str, Any], cuda, rng: np.random.Generator, stream) -> list:
    """Device buffers of a step's operands: random inputs (epilogue inputs too), then outputs."""
    params = decode(step["params"])
    shapes = list(params["in_shapes"])
    dtypes = list(params["in_dtypes"])
    epilogue = params.get("epilogue")
    if epilogue:
        shapes += epilogue["in_shapes"]
        dtypes += epilogue["in_dtypes"]
    bufs = []
    pool = _pool()
    for shape, dtype in zip(shapes, dtypes, strict=True):
        # each operand from its own offset (two of one size must differ: A == B would make a
        # transposed result agree with the reference); int8 data spread over its range
        start = int(rng.integers(POOL))
        values = np.concatenate([pool[start:], pool[:start]])
        if np.dtype(dtype) == np.int8:
            values = np.clip(np.rint(values * 40), -128, 127)
        data = np.resize(values.astype(dtype), int(np.prod(shape)))
        buf = cuda.DeviceBuffer(max(data.nbytes, 1))
        buf.upload(data, stream)
        bufs.append(buf)
    for shape, dtype in zip(params["out_shapes"], _stored(params), strict=True):
        bufs.append(cuda.DeviceBuffer(max(int(np.prod(shape)) * np.dtype(dtype).itemsize, 1)))
    return bufs


@functools.cache
def _pool() -> np.ndarray:
    """POOL seeded normal values, drawn once per process (operands read them from their own
    offsets)."""
    return np.random.default_rng(0).standard_normal(POOL)


def _outputs(step: dict[str, Any]) -> list[tuple[int, np.dtype]]:
    """(elements, dtype) of a step's outputs, in the order `_buffers` puts them last."""
    params = decode(step["params"])
    return [(int(np.prod(shape)), np.dtype(dtype))
            for shape, dtype in zip(params["out_shapes"], _stored(params), strict=True)]


def _stored(params: dict[str, Any]) -> list[str]:
    """The dtypes of a step's output buffers (a fused epilogue cast changes the first)."""
    return [stored_dtype(params), *params["out_dtypes"][1:]] if params["out_dtypes"] else []


def _poison(outputs: list, bufs: list, stream, rng: np.random.Generator | None = None) -> None:
    """Fill a step's outputs so that elements a kernel leaves unwritten show: float ones with
    NaN, integer ones (with `rng`) with random values, which the exact comparison of integer
    results (`disagreement(exact=True)`) tells from the reference's."""
    for (size, dtype), buf in zip(outputs, bufs[len(bufs) - len(outputs):], strict=True):
        if dtype.kind == "f" or dtype.name == "bfloat16":
            buf.upload(np.full(size, np.nan, dtype), stream)
        elif dtype.kind in "iu" and rng is not None:
            info = np.iinfo(dtype)
            buf.upload(rng.integers(info.min, info.max, size, dtype=dtype, endpoint=True),
                       stream)


def _result(outputs: list, bufs: list, stream) -> np.ndarray:
    """The first output of a candidate's run, as float64."""
    size, dtype = outputs[0]
    out = bufs[len(bufs) - len(outputs)].download(np.empty(size, dtype), stream)
    stream.synchronize()
    return out.astype(np.float64)


def disagreement(out: np.ndarray, reference: np.ndarray | None,
                 tolerance: float = AGREEMENT) -> str | None:
    """Why a candidate's output cannot be trusted (None: it can): non-finite elements, or more
    than `tolerance` rel-L2 from the reference candidate's (None: it is the first); tolerance
    0: any element that differs."""
    bad = int(np.count_nonzero(~np.isfinite(out)))
    if bad:
        return f"{bad} unwritten or non-finite output element(s)"
    if reference is None:
        return None
    if tolerance == 0:
        differ = int(np.count_nonzero(out != reference))
        return f"{differ} element(s) differ from the reference tactic's" if differ else None
    scale = max(float(np.linalg.norm(reference)), 1e-30)
    error = float(np.linalg.norm(out - reference)) / scale
    return f"{error:.2e} rel-L2 from the reference tactic" if error > tolerance else None


def _tolerance(params: dict[str, Any]) -> float:
    """How far a candidate may be from the reference tactic: INT8 GEMMs sum exactly, so their
    int32 sums must be equal and a dequantizing epilogue may differ only by float contraction
    (INT8_EPILOGUE: a kernel that drops a K tile is 1e-2 off); others AGREEMENT."""
    if list(params.get("in_dtypes", [])[:2]) != ["int8", "int8"]:
        return AGREEMENT
    return INT8_EPILOGUE if params.get("epilogue") else 0.0


def _scratch(spec: KernelSpec, cuda, stream) -> list:
    """The zeroed split-K counters and partial tiles a candidate takes (none without)."""
    bufs = []
    if spec.workspace_bytes:
        for size in (spec.counter_bytes, spec.workspace_bytes):
            buf = cuda.DeviceBuffer(size)
            buf.zero(stream)
            bufs.append(buf)
    return bufs


def _time(spec: KernelSpec, function, bufs: list, cuda, stream,
          bound: float | None = None) -> float:
    """The kernel's mean ms per launch after a warm-up. One launch is timed first; with the best
    time so far `bound`, a kernel SLOWER times slower (and over CUT_MS) is not timed further;
    one under GRAPH_BELOW_MS is timed as a captured graph of its launches (`_graphed`), where
    the runtime can capture; the others are timed over enough launches to fill BUDGET_MS (1 to
    REPEATS)."""
    if spec.shared_bytes > 48 * 1024:  # as the executor does: opt in to the dynamic shared memory
        function.set_max_dynamic_shared(spec.shared_bytes)
    from ember.runtime.tensor_maps import arguments

    maps = arguments(spec.tensor_maps, [b.ptr for b in bufs], "a candidate")
    args = cuda.pack_args([("ptr", b.ptr) for b in bufs] + maps)

    def timed(launches: int) -> float:
        start, end = cuda.Event(), cuda.Event()
        start.record(stream)
        for _ in range(launches):
            cuda.launch(function, spec.grid, spec.block, spec.shared_bytes, stream, args)
        end.record(stream)
        return start.elapsed_ms(end) / launches

    cuda.launch(function, spec.grid, spec.block, spec.shared_bytes, stream, args)
    first = timed(1)
    if bound is not None and first > max(SLOWER * bound, CUT_MS):
        return first
    repeats = max(1, min(REPEATS, int(BUDGET_MS / max(first, 1e-6))))
    if repeats == REPEATS:  # a short kernel: the warm-up the long ones skip
        for _ in range(WARMUP - 1):
            cuda.launch(function, spec.grid, spec.block, spec.shared_bytes, stream, args)
    if first < GRAPH_BELOW_MS:
        graphed = _graphed(lambda: cuda.launch(function, spec.grid, spec.block,
                                               spec.shared_bytes, stream, args), cuda, stream)
        if graphed is not None:
            return graphed
    return timed(repeats)


def _graphed(launch: Callable[[], None], cuda, stream) -> float | None:
    """The ms per launch of GRAPHED `launch()`es captured as one CUDA graph, replayed once to
    warm up and once timed; None where the runtime cannot capture them (the caller then times
    launches one by one, as before graphs were used here)."""
    try:
        with cuda.capture(stream) as graph:
            for _ in range(GRAPHED):
                launch()
        try:
            graph.exec.launch(stream)
            start, end = cuda.Event(), cuda.Event()
            start.record(stream)
            graph.exec.launch(stream)
            end.record(stream)
            return start.elapsed_ms(end) / GRAPHED
        finally:
            graph.exec.close()
    except EmberError:
        return None


def _compile(sources: dict[str, str], arch: str) -> dict[str, Any]:
    """Compile every candidate (in parallel); if some fail, compile one by one and keep those
    that succeed (a candidate that does not compile is not chosen)."""
    with progress.phase("Compiling candidate kernels", len(set(sources.values()))) as done:
        try:
            return dict(zip(sources, compile_many(list(sources.items()), arch=arch,
                                                  on_done=lambda name: done.step()),
                            strict=True))
        except CompileError:
            compiled = {}
            for name, source in sources.items():
                try:
                    compiled[name] = compile_many([(name, source)], arch=arch)[0]
                except CompileError:
                    continue
            return compiled


def autotune(manifest: dict[str, Any], arch: str, workspace: int = -1) -> Tuning:
    """Pick each tunable step's fastest tactic on the GPU present (which must be `arch`);
    with `workspace` >= 0, only among those whose kernel workspace fits it (TensorRT's
    WORKSPACE pool limit).
    Reads `manifest`'s "steps" (as plan steps: name, template, params, origin) and "symbols"
    (name -> [min, opt, max]), writes nothing into them. Returns the choices and
    the counts: steps tuned, kernels timed, steps answered from the timing cache, candidates
    that failed to launch, and candidates rejected for computing something else than the
    reference candidate (neither is chosen; the counts show in the plan's "autotune").
    The timing cache is the build's (`timing_cache.using`), else the default one."""
    from ember.runtime import cuda

    device = cuda.default_device()
    cache = Session(environment(device.name, arch))
    tuning = Tuning()
    stats = tuning.stats
    todo: list[tuple[dict, int, tuple, str, list[tuple[dict, str, KernelSpec]]]] = []
    # steps of one kernel key in this build share one timing (a warm build, which finds the key
    # in the cache, then chooses as the cold one did): key -> the later steps' (index, slot)
    twins: dict[str, list[tuple[int, Any, list[dict]]]] = {}
    symbols = manifest.get("symbols") or {}
    for index, plan_step in enumerate(manifest["steps"]):
        for step, slot in _timing_points(plan_step, symbols):
            options = _tactics(step, arch)
            if step is not plan_step:  # only tactics the symbolic kernel takes (no split-K on K)
                options = [t for t in options if _emits(plan_step, t, symbols)]
            if workspace >= 0:
                from ember.codegen.select_tactics import within_workspace

                options = within_workspace(step["template"], step["params"], options, workspace)
            if len(options) < 2:
                continue
            stats["steps"] += 1
            kind = "tactic" if step is plan_step else "tactic-symbolic"
            cached = cache.get(kind, step)
            if cached is not None and cached.get("tactic") in options:
                # the template's own dict (its key order: the IR and the plan print it)
                tuning.choices.append((index, slot, options[options.index(cached["tactic"])]))
                tuning.times[(index, slot)] = _cached_times(cached, options)
                stats["cached"] += 1
                continue
            key = kernel_key(kind, step["template"], step["params"])
            if key in twins:  # the same kernel as a step already scheduled: its choice, once
                twins[key].append((index, slot, options))
                continue
            twins[key] = []
            cache.miss(step)
            emitted = []
            for tactic in options:
                trial = dict(step, params={**step["params"], "tactic": tactic})
                name, spec = emit_step(trial)
                emitted.append((tactic, name, spec))
            todo.append((step, index, slot, kind, emitted))
    if not todo:
        return tuning
    unique = {name: spec.source for *_, emitted in todo for _, name, spec in emitted}
    compiled = _compile(unique, arch)
    rng = np.random.default_rng(0)
    stream = cuda.Stream(device)
    count = sum(1 for *_, emitted in todo for _, name, _ in emitted if name in compiled)
    with progress.phase("Timing tactics", count) as timed:
        for step, index, slot, kind, emitted in todo:
            best: tuple[float, dict] | None = None
            reference: np.ndarray | None = None
            outcome: list[tuple[dict, float | str]] = []
            operands = _buffers(step, cuda, rng, stream)
            outputs = _outputs(step)
            tolerance = _tolerance(decode(step["params"]))
            for tactic, name, spec in emitted:
                if name not in compiled:  # did not compile: not a candidate here
                    outcome.append((tactic, "did not compile"))
                    continue
                try:
                    module = cuda.Module.load(compiled[name].cubin, compiled[name].ptx,
                                              device=device, name=name)
                    try:
                        _poison(outputs, operands, stream, rng)
                        bufs = operands + _scratch(spec, cuda, stream)
                        ms = _time(spec, module.function(name), bufs, cuda, stream,
                                   best[0] if best else None)
                        out = _result(outputs, operands, stream)
                    finally:
                        stream.synchronize()
                        module.unload()
                except EmberError:  # a candidate that cannot run here (resources): not chosen
                    stats["failed"] += 1
                    outcome.append((tactic, "failed"))
                    timed.step()
                    continue
                stats["timed"] += 1
                timed.step()
                if disagreement(out, reference, tolerance) is not None:  # computes something else
                    stats["rejected"] += 1
                    outcome.append((tactic, "rejected"))
                    continue
                outcome.append((tactic, ms * 1e3))
                reference = out if reference is None else reference
                if best is None or ms < best[0]:
                    best = (ms, tactic)
            twin_slots = twins[kernel_key(kind, step["template"], step["params"])]
            for i, sl, _ in [(index, slot, None), *twin_slots]:
                tuning.times[(i, sl)] = outcome
            if best is None:  # none ran: the cost model's choice stands
                continue
            tuning.choices.append((index, slot, best[1]))
            tuning.choices += [(i, sl, best[1]) for i, sl, opts in twin_slots
                               if best[1] in opts]
            cache.put(kind, step, {"tactic": best[1], "ms": float(best[0]),
                                   "times": [[t, v] for t, v in outcome]})
    cache.close()
    return tuning


def tactic_key(tactic: dict) -> str:
    """A tactic as a dict key (tactics are dicts of lists)."""
    return json.dumps(tactic, sort_keys=True)


def _cached_times(cached: dict, options: list[dict]) -> list[tuple[dict, float | str]]:
    """A timing-cache entry's outcome per candidate: the times it recorded (so a warm build
    explains its choice as the cold one did), else the chosen one's time alone."""
    recorded = cached.get("times")
    if isinstance(recorded, list):
        known = {tactic_key(t): v for t, v in recorded
                 if isinstance(t, dict) and isinstance(v, float | str)}
        return [(t, known.get(tactic_key(t), "not timed")) for t in options]
    ms = cached.get("ms")
    return [(t, float(ms) * 1e3 if t == cached["tactic"] and isinstance(ms, float)
             else "from the timing cache") for t in options]


def time_kernels(steps: list[dict[str, Any]], arch: str) -> list[float | None]:
    """The time (ms) of each step's kernel on the GPU present (which must be `arch`): the
    fastest of its candidate tactics (`tactics(params, arch)`; the template's own choice where
    it offers none), None where none compiled and ran. Steps are static (no symbolic dims).
    Times are kept in the timing cache, as tactics are. Nothing here checks results: the
    autotuner checks the tactic the plan finally runs."""
    from ember.runtime import cuda

    device = cuda.default_device()
    cache = Session(environment(device.name, arch))
    times: list[float | None] = [None] * len(steps)
    todo: list[tuple[int, dict, list[tuple[str, KernelSpec]]]] = []
    # steps of one kernel (the same reformat between many pairs of ops: an INT8 model's Q/DQ
    # chains had 600 reformat steps of a few dozen kernels) are timed once
    first: dict[str, int] = {}
    twins: dict[int, list[int]] = {}
    for index, step in enumerate(steps):
        cached = cache.get("time", step)
        if cached is not None and isinstance(cached.get("ms"), float):
            times[index] = cached["ms"]
            continue
        key = kernel_key("time", step["template"], step["params"])
        if key in first:
            twins.setdefault(first[key], []).append(index)
            continue
        first[key] = index
        cache.miss(step)
        emitted = []
        for tactic in _tactics(step, arch) or [None]:
            trial = step if tactic is None else dict(step, params={**step["params"],
                                                                   "tactic": tactic})
            try:
                emitted.append(emit_step(trial))
            except EmberError:  # a tactic this shape does not take
                continue
        todo.append((index, step, emitted))
    if not todo:
        return times
    compiled = _compile({name: spec.source for *_, emitted in todo for name, spec in emitted},
                        arch)
    rng = np.random.default_rng(0)
    stream = cuda.Stream(device)
    count = sum(1 for *_, emitted in todo for name, _ in emitted if name in compiled)
    with progress.phase("Timing kernels", count) as timed:
        for index, step, emitted in todo:
            operands = _buffers(step, cuda, rng, stream)
            for name, spec in emitted:
                if name not in compiled:
                    continue
                try:
                    module = cuda.Module.load(compiled[name].cubin, compiled[name].ptx,
                                              device=device, name=name)
                    try:
                        ms = _time(spec, module.function(name),
                                   operands + _scratch(spec, cuda, stream), cuda, stream,
                                   times[index])
                    finally:
                        stream.synchronize()
                        module.unload()
                except EmberError:  # cannot run here (resources): not a candidate
                    continue
                finally:
                    timed.step()
                best = times[index]
                times[index] = ms if best is None else min(best, ms)
            if times[index] is not None:
                cache.put("time", step, {"ms": float(times[index])})
            for twin in twins.get(index, ()):
                times[twin] = times[index]
    cache.close()
    return times
