"""The TensorRT-shaped build API: Builder, BuilderConfig, OnnxParser -> serialized plan bytes.

    builder = ember.Builder()
    network = builder.create_network()
    ember.OnnxParser(network).parse_from_file("model.onnx")
    config = builder.create_builder_config()
    plan = builder.build_serialized_network(network, config)
    engine = ember.Runtime().deserialize_cuda_engine(plan)
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import onnx
from xdsl.passes import ModulePass

from ember.codegen import progress, timing_cache
from ember.codegen.timing_cache import TimingCache
from ember.compiler.network import NetworkDefinition, precision_name
from ember.compiler.onnx_importer import import_onnx, load_model
from ember.compiler.pack import pack
from ember.compiler.pipeline import AfterPass, resolve_passes, run_passes
from ember.compiler.progress import check_monitor
from ember.compiler.trt_names import (
    DeviceType,
    ErrorCode,
    HardwareCompatibilityLevel,
    MemoryPoolType,
    NetworkDefinitionCreationFlag,
    ParserError,
    network_flags,
)
from ember.dialects.symbol_ranges import set_symbol_ranges
from ember.errors import (
    BuildCancelled,
    EmberError,
    ModelImportError,
    TimingCacheError,
    UnsupportedError,
)
from ember.runtime import formats
from ember.runtime.engine import launches, workspace_bytes
from ember.runtime.inspector import ProfilingVerbosity
from ember.runtime.logger import ILogger, Severity, check_logger, emit
from ember.runtime.plan import plan_bytes
from ember.runtime.trt_types import ContextManaged, Dims, HostMemory, Numbered, int_dims


class BuilderFlag(Numbered):
    """TensorRT's builder flags, numbered as TensorRT 10 numbers them: `int(flag)` is the flag's
    bit in `config.flags`, so TensorRT's `config.flags = 1 << int(BuilderFlag.FP16)` works, and
    `a | b` of flags is that bit field too (ember's shorthand: `set_flag(FP16 | TF32)`,
    `BuilderConfig(flags=FP16 | OBEY_PRECISION_CONSTRAINTS)`).

    What ember does with each: FP16 / BF16 / TF32: a layer *may* run in that precision
    (assign-precision says which do); OBEY / PREFER_PRECISION_CONSTRAINTS: what per-layer
    precisions are (an error where impossible / a warning); STRICT_TYPES (TensorRT 8's, gone
    from 10) is OBEY; DISABLE_TIMING_CACHE: the autotuner reads and writes no timing cache;
    ERROR_ON_TIMING_CACHE_MISS: a kernel the timing cache cannot answer is an error naming it;
    REFIT (and REFIT_IDENTICAL, the same here): a plan `ember.Refitter` updates; STRIP_PLAN:
    one without its refittable weights, refit at deployment (compiler/refit_build.py).
    INT8: a model without Q/DQ nodes is calibrated with `config.int8_calibrator` into one
    with them (compiler/calibrate.py). FP8 (TensorRT 10's meaning): plugins may take and give
    float8 tensors; E4M3 Q/DQ nodes need no flag (fold-qdq runs their convs and matmuls on
    FP8 tensor cores from sm_89 on), as INT8 ones need none. Every other flag is an error
    naming it when set (`IMPLEMENTED`)."""

    FP16 = 0
    INT8 = 1
    DEBUG = 2
    GPU_FALLBACK = 3
    REFIT = 4
    DISABLE_TIMING_CACHE = 5
    TF32 = 6
    SPARSE_WEIGHTS = 7
    SAFETY_SCOPE = 8
    OBEY_PRECISION_CONSTRAINTS = 9
    PREFER_PRECISION_CONSTRAINTS = 10
    DIRECT_IO = 11
    REJECT_EMPTY_ALGORITHMS = 12
    VERSION_COMPATIBLE = 13
    EXCLUDE_LEAN_RUNTIME = 14
    FP8 = 15
    ERROR_ON_TIMING_CACHE_MISS = 16
    BF16 = 17
    DISABLE_COMPILATION_CACHE = 18
    STRIP_PLAN = 19
    REFIT_IDENTICAL = 20
    WEIGHT_STREAMING = 21
    INT4 = 22
    REFIT_INDIVIDUAL = 23
    STRICT_NANS = 24
    MONITOR_MEMORY = 25
    FP4 = 26
    EDITABLE_TIMING_CACHE = 27
    DISTRIBUTIVE_INDEPENDENCE = 28
    # aliases, as TensorRT has them
    WEIGHTLESS = 19
    STRICT_TYPES = 9

    __index__ = Numbered.__int__

    @property
    def bit(self) -> int:
        return 1 << self.value

    def __or__(self, other: BuilderFlag | int) -> int:
        return self.bit | _mask(other)

    __ror__ = __or__

    def __and__(self, other: BuilderFlag | int) -> int:
        return self.bit & _mask(other)

    __rand__ = __and__

    def __invert__(self) -> int:
        return ~self.bit


def _mask(flags: BuilderFlag | int) -> int:
    if isinstance(flags, BuilderFlag):
        return flags.bit
    if isinstance(flags, bool) or not isinstance(flags, int):
        raise EmberError(f"builder flags are BuilderFlag members or a bit field of them "
                         f"(1 << int(flag)), not {flags!r}")
    return flags


# the flags a build honours; why each of the others is refused
IMPLEMENTED_FLAGS = frozenset({BuilderFlag.FP16, BuilderFlag.BF16, BuilderFlag.TF32,
                               BuilderFlag.INT8, BuilderFlag.FP8,
                               BuilderFlag.OBEY_PRECISION_CONSTRAINTS,
                               BuilderFlag.PREFER_PRECISION_CONSTRAINTS,
                               BuilderFlag.DISABLE_TIMING_CACHE,
                               BuilderFlag.ERROR_ON_TIMING_CACHE_MISS, BuilderFlag.REFIT,
                               BuilderFlag.REFIT_IDENTICAL, BuilderFlag.STRIP_PLAN,
                               BuilderFlag.GPU_FALLBACK})
# GPU_FALLBACK, TensorRT's "a layer DLA cannot run runs on the GPU", with ember's CPU executor as
# the second device: a layer placed on the CPU (set_device_type, default_device_type) that the
# CPU executor cannot run — a plugin with no numpy reference registered; every kernel template
# has one — runs on the GPU (emit-cuda's gpu_fallback) instead of failing the build by name.
# a plan whose weights a Refitter can change (compiler/refit_build.py); REFIT_IDENTICAL is
# REFIT (any new weights refit, identical ones too); STRIP_PLAN implies it
REFIT_FLAGS = BuilderFlag.REFIT | BuilderFlag.REFIT_IDENTICAL | BuilderFlag.STRIP_PLAN
_WHY_NOT = {
    BuilderFlag.INT4: "INT4 builds are not implemented",
    BuilderFlag.FP4: "FP4 builds are not implemented",
    BuilderFlag.REFIT_INDIVIDUAL: "weights are not marked refittable one by one; "
                                  "BuilderFlag.REFIT makes every weight it can refittable",
    BuilderFlag.DEBUG: "per-layer synchronization is not implemented (ember.Profiler times "
                       "each step)",
    BuilderFlag.SAFETY_SCOPE: "ember has no safety runtime",
    BuilderFlag.DIRECT_IO: "I/O formats are chosen with set_allowed_io_formats",
    BuilderFlag.EDITABLE_TIMING_CACHE: "ITimingCache.query/update are not implemented: "
                                       "ember's entries are keyed by kernel signature, not "
                                       "TensorRT's TimingCacheKey",
    BuilderFlag.DISABLE_COMPILATION_CACHE: "kernels are compiled for each build (there is no "
                                           "compilation cache to disable)",
}


def _check_flags(mask: int, where: str) -> int:
    """`mask` if every flag in it is one ember honours; else an error naming the others."""
    mask = _mask(mask)
    known = sum(f.bit for f in BuilderFlag)
    if mask < 0 or mask & ~known:
        raise EmberError(f"{where}: bits {mask & ~known if mask >= 0 else mask:#x} name no "
                         "BuilderFlag")
    refused = [f for f in BuilderFlag if mask & f.bit and f not in IMPLEMENTED_FLAGS]
    if refused:
        raise UnsupportedError(f"{where}: " + "; ".join(
            f"BuilderFlag.{f.name} is not implemented"
            + (f" ({_WHY_NOT[f]})" if f in _WHY_NOT else "") for f in refused))
    return mask


class OptimizationProfile(ContextManaged):
    """TensorRT's IOptimizationProfile: (min, opt, max) shapes of the network's dynamic inputs."""

    def __init__(self, shapes: dict[str, tuple] | None = None) -> None:
        self.shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {}
        for name, (lo, opt, hi) in (shapes or {}).items():
            self.set_shape(name, lo, opt, hi)

    def set_shape(self, input: str, min: tuple, opt: tuple, max: tuple) -> None:
        lo, mid, hi = (int_dims(s, f"set_shape('{input}') {what}")
                       for s, what in ((min, "min"), (opt, "opt"), (max, "max")))
        self.shapes[str(input)] = (lo, mid, hi)

    def get_shape(self, input: str) -> list[Dims]:
        """[min, opt, max] of an input (empty where the profile does not name it)."""
        return [Dims(s) for s in self.shapes.get(str(input), ())]

    def set_shape_input(self, input: str, *values: Any) -> None:
        raise UnsupportedError(f"set_shape_input('{input}'): shape-tensor inputs are not "
                               "implemented (give their values as constants)")

    def __bool__(self) -> bool:
        """A profile is valid when every shape it holds has min ≤ opt ≤ max dim by dim."""
        return all(len(lo) == len(opt) == len(hi)
                   and all(a <= b <= c for a, b, c in zip(lo, opt, hi, strict=True))
                   for lo, opt, hi in self.shapes.values())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OptimizationProfile) and self.shapes == other.shapes

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"OptimizationProfile({self.shapes})"


# TensorRT config attributes ember does not have, and why (setting one is an error naming it)
_NOT_CONFIG = {
    "algorithm_selector": "tactics are chosen by ember's autotuner (autotune, forced_tile)",
    "DLA_core": "ember has no DLA",
    "engine_capability": "ember builds the standard engine capability only",
    "builder_optimization_level": "ember's optimization switch is BuilderConfig.optimize "
    "(and `pipeline`)",
    "max_aux_streams": "plans run on one stream",
    "runtime_platform": "plans run on the platform they were built on",
    "avg_timing_iterations": "the autotuner's repeat count is its own",
    "plugins_to_serialize": "a plan carries its plugins' kernels, never plugin libraries",
    "tiling_optimization_level": "not implemented", "l2_limit_for_tiling": "not implemented",
    "max_num_tactics": "not implemented",
}


@dataclass
class BuilderConfig(ContextManaged):
    """What a build does. Constructed directly it is strict FP32 (no TF32), so a plain
    `BuilderConfig()` keeps FP32 results bit for bit; `Builder.create_builder_config()` sets
    TF32 as TensorRT's does. Setting an attribute it does not have is an error naming it."""

    # TensorRT's bit field (1 << int(BuilderFlag.X)); a BuilderFlag member is its own bit
    flags: int = 0
    # per-layer precisions by ONNX node name ("fp32", "fp16", "bf16"; TensorRT's
    # `layer.precision`) and output types by (node, output index) (`layer.set_output_type`)
    layer_precisions: dict[str, str] = field(default_factory=dict)
    layer_output_types: dict[tuple[str, int], str] = field(default_factory=dict)
    # how many types a "+" list gave a layer name or pattern (trtexec's SPLIT:fp16+fp32): the
    # build checks each layer it names has that many outputs
    layer_output_type_counts: dict[str, int] = field(default_factory=dict)
    pipeline: str = "default"
    target_arch: str | None = None      # e.g. "sm_90": compile CUDA kernels for this GPU
    # a step whose template has no CUDA kernel yet runs on the host inside a GPU plan
    allow_cpu_fallback: bool = True
    profiles: list[OptimizationProfile] = field(default_factory=list)
    # formats the network's 4-D inputs and outputs may take (TensorRT's allowed_formats): ONNX's
    # NCHW unless NHWC is allowed too, then the builder picks what the first/last kernels want
    allowed_io_formats: tuple[str, ...] = ("NCHW",)
    # the assign-layouts pass: each activation in the format its kernels prefer (False: NCHW only)
    assign_layouts: bool = True
    # whether assign-layouts may use the channel-packed NC4HW4 (depthwise convs run vectorized
    # in it); None: the default of the day, `assign_layouts.PACKED_FORMAT`
    packed_format: bool | None = None
    # False: only the passes a plan needs (the "unoptimized" pipeline: legalize, fold constants,
    # one kernel per nn op), whatever `pipeline` says: no folding, fusion or layout choice. The
    # baseline that differential tests compare the optimized build with.
    optimize: bool = True
    # how GPU builds choose each 4-D kernel's format (choose-formats): "measured" (kernels and
    # reformats timed on the GPU), "model" (the cost model), "preferred" (assign-layouts' fixed
    # policy, no choose-formats); None: measured when the build autotunes, else the model
    format_choice: str | None = None
    # time each conv/matmul step's candidate tactics on the GPU and keep the fastest (TensorRT's
    # tactic selection). None: when the build targets the GPU present; True: required (an error
    # without that GPU); False: the cost model's choice, no timing.
    autotune: bool | None = None
    # the target GPU's multiprocessors as select-tactics' cost models count them (its
    # `sms` option; None: gemm_tiles.SM_COUNT, an H100/H200). CUDA targets only, without
    # autotuning (which times on the GPU present instead).
    sm_count: int | None = None
    # one FP32 register tile "BM,BN,BK,TM,TN" forced on every conv/matmul, without split-K
    # (select-tactics' `tile` option; benchmarks/bench_kernels.py --sweep). CUDA targets only,
    # without autotuning (which would replace it).
    forced_tile: str | None = None
    # TensorRT's memory pools (set_memory_pool_limit): bytes by MemoryPoolType; a built plan
    # over a limit is refused, naming the kernels
    memory_pool_limits: dict[MemoryPoolType, int] = field(default_factory=dict)
    # TensorRT's per-layer placement (set_device_type), by ONNX node name: DeviceType.CPU runs
    # the layer's kernels on the host (emit-cuda's `host`); the default device is the GPU
    device_types: dict[str, DeviceType] = field(default_factory=dict)
    # TensorRT's default_device_type: where a layer without a device_types entry runs. CPU (a
    # GPU build's layers on the host, but those set to DeviceType.GPU) needs target_arch to
    # mean more than a CPU plan; DLA is an error
    default_device_type: DeviceType = DeviceType.GPU
    # TensorRT's hardware compatibility: AMPERE_PLUS builds sm_80 code (whatever target_arch
    # names: it says a GPU build) that runs on any GPU from sm_80 up; see the enum
    hardware_compatibility_level: HardwareCompatibilityLevel = HardwareCompatibilityLevel.NONE
    # ember's plans always keep every layer's detail (the inspector's JSON): DETAILED only
    profiling_verbosity: ProfilingVerbosity = ProfilingVerbosity.DETAILED
    # the timing cache the autotuner reads and extends (set_timing_cache); None: the default
    # cache file, $EMBER_CACHE_DIR/timing.cache (codegen/timing_cache.py)
    timing_cache: TimingCache | None = None
    # TensorRT's IProgressMonitor: told of the build's phases and steps; may cancel the build
    progress_monitor: Any = None
    # with BuilderFlag.INT8, a model without Q/DQ nodes is calibrated with this calibrator (an
    # ember.IInt8EntropyCalibrator2 / MinMax / Entropy / Legacy subclass) and quantized
    # (compiler/calibrate.py); a model with Q/DQ nodes runs them without it
    int8_calibrator: Any = None

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "flags":
            value = _check_flags(value, "BuilderConfig.flags")
        elif name == "progress_monitor":
            value = check_monitor(value)
        elif name == "target_arch" and value is not None:
            from ember.runtime.arch import parse_arch

            if not isinstance(value, str):
                raise EmberError(f"BuilderConfig.target_arch takes an arch such as 'sm_90' "
                                 f"(None: a CPU plan), not {value!r}")
            try:
                parse_arch(value)
            except ValueError as e:
                raise EmberError(f"BuilderConfig.target_arch: {e}; None builds a CPU "
                                 "plan") from None
        elif name == "timing_cache":
            if value is not None and not isinstance(value, TimingCache):
                raise EmberError(f"BuilderConfig.timing_cache takes an ITimingCache "
                                 f"(config.create_timing_cache), not {type(value).__name__}")
        elif name == "hardware_compatibility_level":
            if not isinstance(value, HardwareCompatibilityLevel):
                raise EmberError(f"BuilderConfig.hardware_compatibility_level takes a "
                                 f"HardwareCompatibilityLevel, not {value!r}")
        elif name == "default_device_type":
            if not isinstance(value, DeviceType):
                raise EmberError(f"default_device_type takes a DeviceType, not {value!r}")
            if value is DeviceType.DLA:
                raise UnsupportedError("default_device_type = DeviceType.DLA is not implemented "
                                       "(ember has no DLA; DeviceType.CPU runs layers on the "
                                       "host)")
        elif name == "profiling_verbosity":
            if value is not ProfilingVerbosity.DETAILED:
                raise UnsupportedError(
                    f"profiling_verbosity {value!r}: ember's plans always keep each layer's "
                    "details; only ProfilingVerbosity.DETAILED is implemented")
        elif name not in _CONFIG_NAMES:
            why = _NOT_CONFIG.get(name, "no such setting")
            raise UnsupportedError(f"BuilderConfig.{name} is not implemented ({why})")
        object.__setattr__(self, name, value)

    def set_flag(self, flag: BuilderFlag | int) -> None:
        self.flags = self.flags | _mask(flag)

    def clear_flag(self, flag: BuilderFlag | int) -> None:
        self.flags = self.flags & ~_mask(flag)

    def get_flag(self, flag: BuilderFlag) -> bool:
        return bool(self.flags & _mask(flag))

    # -- memory pools (TensorRT's names) ---------------------------------------------------------
    def set_memory_pool_limit(self, pool: MemoryPoolType, pool_size: int) -> None:
        """Bound a memory pool: WORKSPACE, the plan's kernel scratch memory (split-K counters
        and partial sums; the activation arena is not part of it, as in TensorRT). As
        TensorRT's, the limit steers the tactics: select-tactics and the autotuner choose only
        among those whose workspace fits (else the same tiles without split-K); a plan that
        still needs more (symbolic kernels' own choices, the sum of several steps' counters)
        is refused, naming the kernels. Other pools are errors."""
        if not isinstance(pool, MemoryPoolType):
            raise EmberError(f"set_memory_pool_limit: {pool!r} is not a MemoryPoolType")
        if pool is not MemoryPoolType.WORKSPACE:
            why = {MemoryPoolType.TACTIC_DRAM: "the autotuner's timing buffers are not bounded",
                   MemoryPoolType.TACTIC_SHARED_MEMORY: "kernels' static shared memory is not "
                   "known before they are loaded on a GPU"}.get(pool, "ember has no DLA")
            raise UnsupportedError(f"MemoryPoolType.{pool.name} is not implemented ({why})")
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 0:
            raise EmberError(f"set_memory_pool_limit({pool.name}): the size must be an integer "
                             f"number of bytes ≥ 0, not {pool_size!r}")
        self.memory_pool_limits[pool] = pool_size

    # -- the timing cache (TensorRT's names) ------------------------------------------------------
    def create_timing_cache(self, serialized_timing_cache: bytes) -> TimingCache:
        """A timing cache from `ITimingCache.serialize()`'s bytes (b"": an empty one). Bytes
        that are not a cache ember can read give an empty one, with a warning saying why."""
        if not isinstance(serialized_timing_cache, bytes | bytearray | memoryview):
            raise EmberError(f"create_timing_cache takes bytes, not "
                             f"{type(serialized_timing_cache).__name__}")
        if not bytes(serialized_timing_cache):
            return TimingCache()
        try:
            return TimingCache.deserialize(serialized_timing_cache)
        except TimingCacheError as e:
            warnings.warn(f"create_timing_cache: invalid timing cache ({e}); an empty one is "
                          "used instead", stacklevel=2)
            return TimingCache()

    def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
        """Builds with this config read and extend `cache`. A cache made on another GPU or
        with other NVRTC/ember versions is not set (False, with a warning naming what differs)
        unless `ignore_mismatch`: then its entries from elsewhere are kept but never used."""
        if not isinstance(cache, TimingCache):
            raise EmberError(f"set_timing_cache takes an ITimingCache (create_timing_cache), "
                             f"not {type(cache).__name__}")
        local = timing_cache.here()
        differs = sorted({d for env in (cache.environment, *cache.counts())
                          for d in env.differences(local)})
        if differs and not ignore_mismatch:
            warnings.warn(f"set_timing_cache: the cache was made elsewhere ({', '.join(differs)});"
                          " not set (ignore_mismatch=True sets it: its entries measured "
                          "elsewhere are kept and never used)", stacklevel=2)
            return False
        self.timing_cache = cache
        return True

    def get_timing_cache(self) -> TimingCache | None:
        return self.timing_cache

    def set_device_type(self, layer: Any, device_type: DeviceType) -> None:
        """Run `layer` (an ILayer, or an ONNX node name) on `device_type`: GPU, or CPU (its
        kernels run on the host inside the GPU plan, with copies around them; a kernel fused
        from several layers runs on the host if any of them is placed there). DLA is an
        error."""
        if not isinstance(device_type, DeviceType):
            raise EmberError(f"set_device_type: {device_type!r} is not a DeviceType")
        if device_type is DeviceType.DLA:
            raise UnsupportedError("DeviceType.DLA is not implemented (ember has no DLA; "
                                   "DeviceType.CPU runs a layer on the host)")
        self.device_types[_layer_name(layer, "set_device_type")] = device_type

    def get_device_type(self, layer: Any) -> DeviceType:
        return self.device_types.get(_layer_name(layer, "get_device_type"),
                                     self.default_device_type)

    def is_device_type_set(self, layer: Any) -> bool:
        return _layer_name(layer, "is_device_type_set") in self.device_types

    def reset_device_type(self, layer: Any) -> None:
        self.device_types.pop(_layer_name(layer, "reset_device_type"), None)

    def can_run_on(self, layer: Any, device_type: DeviceType) -> bool:
        """GPU: every layer (a layer without a CUDA kernel runs on the host). CPU: every layer
        but a plugin layer whose plugin has no numpy reference registered in this process
        (placed there, it is a build error, or with GPU_FALLBACK runs on the GPU); a layer
        given by node name is not looked up. DLA: none."""
        _layer_name(layer, "can_run_on")
        if not isinstance(device_type, DeviceType):
            raise EmberError(f"can_run_on: {device_type!r} is not a DeviceType")
        plugin = getattr(layer, "get_plugin", None)
        if device_type is DeviceType.CPU and plugin is not None:
            from ember.runtime import plugins

            found = plugins.definition(plugin().qualified, plugin().plugin_version)
            return found is not None and found.reference is not None
        return device_type is not DeviceType.DLA

    def host_layers(self) -> list[str]:
        """The ONNX nodes placed on the CPU, sorted."""
        return sorted(n for n, d in self.device_types.items() if d is DeviceType.CPU)

    def get_memory_pool_limit(self, pool: MemoryPoolType) -> int:
        """The limit set, else "no limit": 2**63 - 1 (TensorRT gives the GPU's memory)."""
        if not isinstance(pool, MemoryPoolType):
            raise EmberError(f"get_memory_pool_limit: {pool!r} is not a MemoryPoolType")
        return self.memory_pool_limits.get(pool, _NO_LIMIT)

    def set_allowed_io_formats(self, *formats: str) -> None:
        """Allow network I/O in these formats: "NCHW" (ONNX's; TensorRT's LINEAR), "NHWC"
        (TensorRT's HWC) and "NC4HW4" (TensorRT's CHW4), by name or TensorFormat. An NHWC
        input is fed, and an NHWC output returned, as [N, H, W, C]; an NC4HW4 one as
        [N, ceil(C/4), H, W, 4] (channel c at [:, c // 4, :, :, c % 4]; the pad lanes of an
        input are ignored, of an output unspecified)."""
        names = []
        for f in formats:
            name = _IO_FORMATS.get(str(getattr(f, "name", f)).upper())
            if name is None:
                raise EmberError(f"unknown I/O format {f!r}; allowed: NCHW (LINEAR), NHWC (HWC), "
                                 "NC4HW4 (CHW4)")
            names.append(name)
        if not names:
            raise EmberError("set_allowed_io_formats: give at least one format")
        self.allowed_io_formats = tuple(dict.fromkeys(names))

    def add_optimization_profile(self, profile: OptimizationProfile) -> int:
        if not isinstance(profile, OptimizationProfile):
            raise EmberError(f"add_optimization_profile takes a profile from "
                             f"builder.create_optimization_profile(), not {profile!r}")
        if not profile:
            raise EmberError(f"optimization profile {profile!r}: min ≤ opt ≤ max does not "
                             "hold for every dim")
        self.profiles.append(profile)
        return len(self.profiles) - 1

    @property
    def num_optimization_profiles(self) -> int:
        return len(self.profiles)

    def check(self) -> None:
        """Refuse settings that this config's build would not read: the GPU-only ones
        (autotune=True, format_choice) in a CPU build. Builder.build_serialized_network calls
        it first."""
        if self.target_arch is None:
            given = [f"{name}={getattr(self, name)!r}" for name in ("format_choice",)
                     if getattr(self, name) is not None]
            if self.autotune:
                given.append("autotune=True")
            if given:
                raise EmberError(f"BuilderConfig {', '.join(given)}: GPU builds only; this "
                                 "config builds a CPU plan (give target_arch)")
        if self.hardware_compatibility_level is HardwareCompatibilityLevel.AMPERE_PLUS:
            if self.target_arch is None:
                raise EmberError("hardware_compatibility_level AMPERE_PLUS: a GPU build's "
                                 "setting (give target_arch); a CPU plan runs anywhere")
            if self.autotune:
                raise EmberError("hardware_compatibility_level AMPERE_PLUS with autotune=True: "
                                 "the autotuner times kernels for the GPU present; an ampere+ "
                                 "plan's tactics are the cost model's, for any GPU from sm_80")
        if self.get_flag(BuilderFlag.DISABLE_TIMING_CACHE):
            given = (["BuilderFlag.ERROR_ON_TIMING_CACHE_MISS"]
                     if self.get_flag(BuilderFlag.ERROR_ON_TIMING_CACHE_MISS) else [])
            given += ["a timing cache (set_timing_cache)"] if self.timing_cache is not None else []
            if given:
                raise EmberError(f"BuilderFlag.DISABLE_TIMING_CACHE with {' and '.join(given)}: "
                                 "with no timing cache, every kernel would miss and no cache "
                                 "would be read or extended")
        if self.int8_calibrator is not None and not self.get_flag(BuilderFlag.INT8):
            raise EmberError("BuilderConfig.int8_calibrator is set but BuilderFlag.INT8 is not: "
                             "set_flag(BuilderFlag.INT8) to calibrate")
        self._check_tensor_core_precisions()

    def _check_tensor_core_precisions(self) -> None:
        """Refuse FP16 / BF16 (flags or per-layer precisions) and INT8 in a build for a GPU
        older than sm_80: ember runs those convs and matmuls on tensor-core kernels only
        (mma.sync m16n8k16 / m16n8k32, cp.async: sm_80 and newer), with no CUDA-core path.
        (An AMPERE_PLUS build compiles for sm_80 whatever target_arch names.)"""
        if self.target_arch is None \
                or self.hardware_compatibility_level is HardwareCompatibilityLevel.AMPERE_PLUS \
                or tensor_core_target(self.target_arch):
            return
        asked = [f"{name} (BuilderFlag.{name}, --{name.lower()})"
                 for name in ("FP16", "BF16", "INT8") if self.get_flag(BuilderFlag[name])]
        halves = [f"'{node}'" for node, p in self.layer_precisions.items()
                  if p in ("fp16", "bf16")]
        if halves:
            asked.append(f"per-layer FP16/BF16 precision for {', '.join(halves[:3])}"
                         + (f" and {len(halves) - 3} more" if len(halves) > 3 else ""))
        if asked:
            arch = self.target_arch
            raise UnsupportedError(
                f"target {arch}: {' and '.join(asked)} "
                f"{'needs' if len(asked) == 1 else 'need'} sm_80 or newer in ember (its "
                "FP16/BF16 and INT8 convs and matmuls run only on tensor-core kernels: "
                f"mma.sync, cp.async); build FP32 for {arch} (without --fp16/--bf16/--int8 "
                "or per-layer FP16/BF16), or target sm_80 or newer")

    @property
    def precision_constraints(self) -> str:
        """"obey", "prefer" or "none", from the flags (OBEY wins over PREFER)."""
        if self.get_flag(BuilderFlag.OBEY_PRECISION_CONSTRAINTS):
            return "obey"
        return "prefer" if self.get_flag(BuilderFlag.PREFER_PRECISION_CONSTRAINTS) else "none"

    def set_precision_constraints(self, mode: str) -> None:
        """trtexec's `--precisionConstraints obey|prefer|none` as flags."""
        if mode not in ("obey", "prefer", "none"):
            raise EmberError(f"precision constraints must be obey, prefer or none, not {mode!r}")
        self.clear_flag(BuilderFlag.OBEY_PRECISION_CONSTRAINTS
                        | BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
        if mode != "none":
            self.set_flag(BuilderFlag.OBEY_PRECISION_CONSTRAINTS if mode == "obey"
                          else BuilderFlag.PREFER_PRECISION_CONSTRAINTS)

    def set_layer_precisions(self, spec: str | dict[str, Any]) -> None:
        """Per-layer precisions: trtexec's "NODE:fp32,NODE2:fp16" or {node: precision}
        (precision a name or a dtype: "fp16", np.float16, ember.float16). As trtexec's, a name
        may hold one wildcard '*' ("*:fp16" every layer, "conv*:fp16" those whose name starts
        so); the build expands it over the model's nodes (`expand_layer_patterns`)."""
        from ember.passes.assign_precision import parse_layer_precisions

        items = parse_layer_precisions(spec, "--layer-precisions") if isinstance(spec, str) \
            else spec
        for node, precision in items.items():
            name = _check_pattern(str(node), "--layer-precisions")
            self.layer_precisions.pop(name, None)  # read left to right: a later one wins
            self.layer_precisions[name] = precision_name(precision, f"layer '{node}'")

    def set_layer_output_types(self, spec: str | dict[tuple[str, int], Any]) -> None:
        """Per-layer output types: trtexec's "NODE:fp16,SPLIT:fp16+fp32" (one type: every
        floating-point output of the layer, as trtexec broadcasts it; several: one per output,
        in order) or {(node, index): precision} (index "*": every output); a name may hold one
        wildcard '*', as in `set_layer_precisions`."""
        from ember.passes.precision_policy import EVERY_OUTPUT

        if isinstance(spec, str):
            items: dict[tuple[str, int], Any] = {}
            counts: dict[str, int] = {}
            for item in filter(None, (s.strip() for s in spec.split(","))):
                node, sep, types = item.rpartition(":")
                if not sep or not node or not types:
                    raise EmberError(f"--layer-output-types: '{item}' is not NODE:TYPE[+TYPE...]")
                names = types.split("+")
                # read left to right: a later item for a layer replaces an earlier one's types
                items = {k: v for k, v in items.items() if k[0] != node}
                counts.pop(node, None)
                if len(names) > 1:
                    counts[node] = len(names)
                for index, t in enumerate(names):
                    items[(node, EVERY_OUTPUT if len(names) == 1 else index)] = t
            for node in {n for n, _ in items}:
                name = _check_pattern(str(node), "--layer-output-types")
                self.layer_output_types = {k: v for k, v in self.layer_output_types.items()
                                           if k[0] != name}
                self.layer_output_type_counts.pop(name, None)
            self.layer_output_type_counts.update(counts)
        else:
            items = dict(spec)
        for (node, index), precision in items.items():
            key = (_check_pattern(str(node), "--layer-output-types"),
                   EVERY_OUTPUT if index == "*" else int(index))
            if key[1] < EVERY_OUTPUT:
                raise EmberError(f"layer '{node}': output index {index} is negative")
            self.layer_output_types.pop(key, None)  # read left to right: a later one wins
            self.layer_output_types[key] = precision_name(
                precision, f"layer '{node}' output #{index}")

    def precision_options(self) -> dict[str, Any]:
        """The assign-precision pass's options for this config ({} when there is nothing to
        assign: strict FP32 without per-layer precisions)."""
        options = {"fp16": self.get_flag(BuilderFlag.FP16), "bf16": self.get_flag(BuilderFlag.BF16),
                   "tf32": self.get_flag(BuilderFlag.TF32),
                   "constraints": self.precision_constraints,
                   "layer_precisions": ",".join(f"{n}:{p}"
                                                for n, p in self.layer_precisions.items()),
                   "output_types": ",".join(f"{n}:{'*' if i < 0 else i}:{p}"
                                            for (n, i), p in self.layer_output_types.items())}
        if not (options["fp16"] or options["bf16"] or options["tf32"]
                or options["layer_precisions"] or options["output_types"]):
            return {}
        return options


# ember's format names and TensorRT's (runtime/formats.py)
_IO_FORMATS = {**{f: f for f in formats.FORMATS}, **formats.ALIASES}


_NO_LIMIT = 2**63 - 1
# the fields, and the properties with a setter of their own
_CONFIG_NAMES = frozenset(f.name for f in dataclasses.fields(BuilderConfig))


def _refuse_attribute(obj: object, name: str, why: str = "") -> None:
    raise UnsupportedError(f"{type(obj).__name__}.{name} is not implemented"
                           + (f" ({why})" if why else "") + "; setting it would do nothing")


class Builder(ContextManaged):
    """TensorRT's IBuilder: networks, configs and profiles, and the build. It reports through
    its logger (a default WARNING Logger without one): each pass (VERBOSE), the plan it built
    (INFO), the compiler's warnings (WARNING) and a failed build's error (ERROR, then raised)."""

    def __init__(self, logger: ILogger | None = None) -> None:
        object.__setattr__(self, "logger", check_logger(logger, "Builder"))

    def __setattr__(self, name: str, value: Any) -> None:
        _refuse_attribute(self, name, "ember's builder has no settings of its own: see "
                          "BuilderConfig")

    # -- the platform ----------------------------------------------------------------------------
    @property
    def platform_has_fast_fp16(self) -> bool:
        """A GPU whose tensor cores run ember's FP16 kernels (mma.sync m16n8k16: sm_80 and
        newer; builds for older targets refuse FP16, `BuilderConfig.check`) is present."""
        return _arch_number() >= 80

    @property
    def platform_has_tf32(self) -> bool:
        return _arch_number() >= 80

    @property
    def platform_has_fast_int8(self) -> bool:
        """A GPU whose tensor cores run ember's int8 kernels (mma.sync m16n8k32: sm_80 and
        newer) is present. Q/DQ models use them without a flag; BuilderFlag.INT8 with
        config.int8_calibrator calibrates a float model into Q/DQ."""
        return _arch_number() >= 80

    @property
    def num_DLA_cores(self) -> int:
        return 0

    # -- what a build is made of -----------------------------------------------------------------
    def create_network(self, flags: int = 0) -> NetworkDefinition:
        """A network; `flags` is TensorRT's bit field of NetworkDefinitionCreationFlag
        (EXPLICIT_BATCH: how every ember network is; STRONGLY_TYPED: the network's types stand,
        see `build_serialized_network`)."""
        network_flags(flags)
        network = NetworkDefinition()
        network.flags = flags  # TensorRT's INetworkDefinition.flags
        return network

    def create_builder_config(self) -> BuilderConfig:
        """A config as TensorRT's builder gives it: for the GPU present (`target_arch`; the CPU
        where there is none) with TF32 allowed (clear_flag(TF32) for strict FP32)."""
        return BuilderConfig(flags=BuilderFlag.TF32, target_arch=detect_arch())

    def create_optimization_profile(self) -> OptimizationProfile:
        return OptimizationProfile()

    def is_network_supported(self, network: NetworkDefinition, config: BuilderConfig) -> bool:
        """Whether `network` builds with `config` (builds it: ember has no cheaper answer)."""
        try:
            self.build_serialized_network(network, config)
        except EmberError:
            return False
        return True

    # -- the build -------------------------------------------------------------------------------
    def build_serialized_network(self, network: NetworkDefinition,
                                 config: BuilderConfig | None = None) -> HostMemory | None:
        """The plan (TensorRT's IHostMemory: bytes). A build that fails raises the error
        (TensorRT returns None) after logging it; one that the config's progress monitor
        cancels returns None, as TensorRT's does, after logging why. In a STRONGLY_TYPED
        network the types are the network's: precision flags (FP16, BF16, OBEY/PREFER_
        PRECISION_CONSTRAINTS) and per-layer precisions are errors; TF32 stays a math mode,
        as in TensorRT."""
        config = config if config is not None else BuilderConfig()
        if not isinstance(config, BuilderConfig):
            raise EmberError(f"build_serialized_network takes a BuilderConfig "
                             f"(builder.create_builder_config()), not {type(config).__name__}")
        config.check()
        strongly_typed = bool(getattr(network, "flags", 0)
                              >> NetworkDefinitionCreationFlag.STRONGLY_TYPED.value & 1)
        if strongly_typed:
            check_strongly_typed(config, "the config")
        config = network.apply_layer_precisions(config)
        if strongly_typed:
            check_strongly_typed(config, "the network's layers")
        try:
            manifest, sections = self._build(network.to_onnx(), config)
        except BuildCancelled:
            return None
        return HostMemory(plan_bytes(manifest, sections))

    def build_engine_with_config(self, network: NetworkDefinition, config: BuilderConfig):
        """Build and load in one step (TensorRT 10's `build_engine_with_config`); None when
        the progress monitor cancels the build."""
        from ember.runtime.engine import Runtime

        plan = self.build_serialized_network(network, config)
        return None if plan is None else Runtime(self.logger).deserialize_cuda_engine(plan)

    def _build(self, model: onnx.ModelProto, config: BuilderConfig) -> tuple[dict, dict]:
        logger = self.logger
        target = config.target_arch or "the CPU"
        emit(logger, Severity.INFO, f"building {len(model.graph.node)} ONNX node(s) for "
             f"{target}, flags {_flag_names(config.flags)}")
        start = last = time.perf_counter()

        def after_pass(index: int, p: ModulePass, module: Any) -> None:
            nonlocal last
            now = time.perf_counter()
            emit(logger, Severity.VERBOSE, f"pass {index} {p.name}: {(now - last) * 1e3:.1f} ms")
            last = now

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                manifest, sections = build_model(model, config, after_pass=after_pass)
                check_memory_limits(manifest, config)
            except EmberError as e:
                _forward_warnings(logger, caught)
                emit(logger, Severity.ERROR, str(e))
                raise
        _forward_warnings(logger, caught)
        steps = manifest["steps"]
        host = sum(1 for s in steps if s.get("device") == "cpu")
        emit(logger, Severity.INFO,
             f"built a plan of {len(steps)} kernel(s)"
             + (f" ({host} on the host)" if host and config.target_arch else "")
             + f" for {target} in {time.perf_counter() - start:.2f} s: activation arena "
             f"{manifest['arena_bytes']} bytes, workspace {workspace_bytes(steps)} bytes")
        return manifest, sections


def _arch_number() -> int:
    arch = detect_arch()
    return int(arch.removeprefix("sm_").rstrip("a")) if arch else 0


def _flag_names(flags: int) -> str:
    return "|".join(f.name for f in BuilderFlag if flags & f.bit) or "none"


def _forward_warnings(logger: ILogger, caught: list[warnings.WarningMessage]) -> None:
    for w in caught:
        emit(logger, Severity.WARNING, str(w.message))


_TYPE_CHANGING = (BuilderFlag.FP16, BuilderFlag.BF16, BuilderFlag.INT8,
                  BuilderFlag.OBEY_PRECISION_CONSTRAINTS,
                  BuilderFlag.PREFER_PRECISION_CONSTRAINTS)


def check_strongly_typed(config: BuilderConfig, where: str) -> None:
    """A STRONGLY_TYPED network's rule: nothing in `config` may change the network's types
    (`ember bench --stronglyTyped` builds under it too). TF32 is a math mode, not a type."""
    given = [f"BuilderFlag.{f.name}" for f in _TYPE_CHANGING if config.get_flag(f)]
    given += [f"layer '{n}' precision" for n in config.layer_precisions]
    given += [f"layer '{n}' output {'*' if i < 0 else i} type"
              for n, i in config.layer_output_types]
    if given:
        raise EmberError(f"a STRONGLY_TYPED network takes its types from the network; "
                         f"{where} set {', '.join(given)}, which would change them (build "
                         "without NetworkDefinitionCreationFlag.STRONGLY_TYPED to let the "
                         "builder choose precisions)")


def check_memory_limits(manifest: dict, config: BuilderConfig) -> None:
    """Refuse a plan over the config's memory pool limits, naming the kernels that need it."""
    limits = config.memory_pool_limits
    steps = manifest["steps"]
    limit = limits.get(MemoryPoolType.WORKSPACE)
    need = workspace_bytes(steps)
    if limit is not None and need > limit:
        users = [f"{s.get('name')} ({max(int(ln.get('workspace', 0)) for ln in launches(s))} B)"
                 for s in steps if any(ln.get("workspace") for ln in launches(s))]
        raise EmberError(f"the plan needs {need} bytes of kernel workspace (split-K partial "
                         f"sums of {', '.join(users)}), over the WORKSPACE memory pool limit of "
                         f"{limit} bytes (config.set_memory_pool_limit)")


class OnnxParser(ContextManaged):
    """Fills a NetworkDefinition from an ONNX model (TensorRT's OnnxParser). A model that does
    not import, or holds operators ember cannot lower, gives False; `get_error(i)` then gives
    each problem as a ParserError (`desc()`, `node()`, `code()`), also logged as ERROR."""

    def __init__(self, network: NetworkDefinition, logger: ILogger | None = None) -> None:
        self.network = network
        self.logger = check_logger(logger, "OnnxParser")
        self._errors: list[ParserError] = []

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, index: int) -> ParserError:
        if not 0 <= index < len(self._errors):
            raise EmberError(f"parser error index {index} out of range: there are "
                             f"{len(self._errors)}")
        return self._errors[index]

    def clear_errors(self) -> None:
        self._errors.clear()

    def supports_operator(self, op_name: str) -> bool:
        """Whether ember lowers the ONNX operator `op_name` (default domain)."""
        from ember.passes.convert_onnx_to_nn.registry import LEGALIZERS

        return op_name in LEGALIZERS

    def _fail(self, errors: list[ParserError]) -> bool:
        for e in errors:
            self._errors.append(e)
            emit(self.logger, Severity.ERROR, str(e))
        return False

    def parse(self, model: bytes | onnx.ModelProto, path: str | None = None) -> bool:
        """`path`: where the model's external data lives (a folder or the model's own path)."""
        if path is not None:
            raise UnsupportedError("OnnxParser.parse(path=...): external-data models are read "
                                   "with parse_from_file(path)")
        try:
            proto, _ = load_model(model)
        except EmberError as e:
            return self._fail([ParserError(ErrorCode.MODEL_DESERIALIZE_FAILED, str(e),
                                           func="parse")])
        return self._parse(proto)

    def parse_from_file(self, model: str | os.PathLike) -> bool:
        try:
            proto, _ = load_model(model)
        except EmberError as e:
            return self._fail([ParserError(ErrorCode.MODEL_DESERIALIZE_FAILED, str(e),
                                           func="parse_from_file")])
        return self._parse(proto)

    def _parse(self, proto: onnx.ModelProto) -> bool:
        nodes = list(proto.graph.node)
        index = {}
        for i, n in enumerate(nodes):
            index.setdefault((n.name, n.op_type), i)
        try:
            import_onnx(proto)  # validates: every offending node is reported
        except ModelImportError as e:
            return self._fail([
                ParserError(ErrorCode.UNSUPPORTED_NODE, p.reason,
                            index.get((p.node, p.op_type), -1), p.node, p.op_type, "import_onnx")
                for p in e.problems])
        except EmberError as e:
            return self._fail([ParserError(ErrorCode.INVALID_GRAPH, str(e), func="import_onnx")])
        unsupported = [ParserError(ErrorCode.UNSUPPORTED_NODE,
                                   f"no lowering to nn for {n.op_type}", i, n.name, n.op_type,
                                   "supports_operator")
                       for i, n in enumerate(nodes)
                       if n.domain in ("", "ai.onnx") and not self.supports_operator(n.op_type)]
        if unsupported:
            return self._fail(unsupported)
        self.network.parsed_model = proto
        opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
                    default=0)
        emit(self.logger, Severity.INFO,
             f"parsed an ONNX model of {len(nodes)} node(s), opset {opset}")
        return True



def _apply_profiles(model: onnx.ModelProto, config: BuilderConfig
                    ) -> tuple[onnx.ModelProto, dict[str, tuple[int, int, int]]]:
    """The model's input dims as a plan keeps them, and the plan's symbols.

    Without profiles the model is as it came (a symbolic input dim is an error later, naming the
    op). With them, an input dim whose min and max agree in every profile becomes that static
    value; any other keeps (or gets) a symbol, whose range is the union of the profiles' ranges
    and whose opt (the size tactics are chosen for) is the first profile's. Kernels take each
    symbol's value as an argument at run time."""
    if not config.profiles:
        inits = {t.name for t in model.graph.initializer}
        dynamic = [f"'{vi.name}' {_dims(vi)}" for vi in model.graph.input
                   if vi.name not in inits and "?" in str(_dims(vi, "?"))]
        if dynamic:
            raise EmberError(f"input(s) {', '.join(dynamic)} have dynamic dims: give their "
                             "shapes (`--shapes`) or an optimization profile (`--min-shapes`, "
                             "`--opt-shapes`, `--max-shapes`; "
                             "`config.add_optimization_profile`)")
        return model, {}
    model = onnx.ModelProto.FromString(model.SerializeToString())
    names = [vi.name for vi in model.graph.input]
    for profile in config.profiles:
        unknown = set(profile.shapes) - set(names)
        if unknown:
            raise EmberError(f"profile names unknown input(s) {sorted(unknown)}; the model's "
                             f"inputs are {names}")
    symbols: dict[str, tuple[int, int, int]] = {}
    for vi in model.graph.input:
        ranges = [p.shapes[vi.name] for p in config.profiles if vi.name in p.shapes]
        dims = vi.type.tensor_type.shape.dim
        if not ranges:
            continue
        if len(ranges) != len(config.profiles):
            raise EmberError(f"input '{vi.name}' has a shape in some optimization profiles but "
                             "not in all of them")
        for lo, opt, hi in ranges:
            if not len(lo) == len(opt) == len(hi) == len(dims):
                raise EmberError(f"profile shape for '{vi.name}' has rank {len(opt)}, the input "
                                 f"has rank {len(dims)}")
        for axis, d in enumerate(dims):
            lo = min(int(r[0][axis]) for r in ranges)
            hi = max(int(r[2][axis]) for r in ranges)
            opt = int(ranges[0][1][axis])
            where = f"input '{vi.name}' dim {axis}"
            if not 0 <= lo <= opt <= hi or any(not r[0][axis] <= r[1][axis] <= r[2][axis]
                                               for r in ranges):
                raise EmberError(f"profile for {where}: min ≤ opt ≤ max does not hold "
                                 f"({[[r[0][axis], r[1][axis], r[2][axis]] for r in ranges]})")
            if d.HasField("dim_value") and d.dim_value > 0:
                if (lo, hi) != (d.dim_value, d.dim_value):
                    raise EmberError(f"profile for {where} asks [{lo}, {hi}], but the model "
                                     f"fixes it at {d.dim_value}")
                continue
            if lo == hi:
                d.Clear()
                d.dim_value = lo
                continue
            if lo == 0:
                raise EmberError(f"profile for {where}: a symbolic dim must be at least 1")
            name = d.dim_param if _SYMBOL.fullmatch(d.dim_param or "") else (
                re.sub(r"\W", "_", f"{vi.name}_{axis}").lstrip("0123456789") or f"dim_{axis}")
            if symbols.setdefault(name, (lo, opt, hi)) != (lo, opt, hi):
                raise EmberError(f"symbol '{name}' ({where}) has the range [{lo}, {hi}] (opt "
                                 f"{opt}), but another input gives it {symbols[name]}")
            d.Clear()
            d.dim_param = name
    return model, symbols


_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _dims(vi: onnx.ValueInfoProto, symbolic: str | None = None) -> list:
    """An input's dims: ints, and its symbols (or `symbolic` for each dynamic dim)."""
    if not vi.type.HasField("tensor_type"):
        return []
    return [d.dim_value if d.HasField("dim_value") else symbolic or d.dim_param or "?"
            for d in vi.type.tensor_type.shape.dim]


def build_model(model: onnx.ModelProto | str | os.PathLike | bytes,
                config: BuilderConfig | None = None, *,
                dump_dir: str | os.PathLike | None = None,
                after_pass: AfterPass | None = None,
                passes: list[ModulePass] | None = None) -> tuple[dict, dict]:
    """ONNX -> (manifest, sections): import, the config's pipeline, kernels, the plan.
    `dump_dir`: write every stage there (`compiler.opt.StageDump`), replayable by `ember-opt`.
    `after_pass(index, pass, module)`: called after each pass (`run_passes`'), e.g. to read
    what a pass decided. `passes`: run these instead of `pipeline_for(config)` (`ember debug`
    edits that list; the packer still checks the result is a plan)."""
    config = _compatible(config or BuilderConfig())
    config.check()
    patterns = any("*" in n for n in [*config.layer_precisions,
                                      *(n for n, _ in config.layer_output_types)])
    if patterns or config.layer_output_type_counts:
        model, _ = load_model(model)  # the wildcards and "+" lists name the model's nodes
        _check_output_type_counts(model, config)  # before patterns become names
    pattern_nodes: dict[str, list[str]] = {}
    if patterns:
        config, pattern_nodes = _expand_patterns(model, config)
    passes = pipeline_for(config) if passes is None else list(passes)
    if pattern_nodes:
        passes = _with_patterns(passes, config, pattern_nodes)
    with progress.listening(config.progress_monitor), timing_cache.using(
            config.timing_cache, disabled=config.get_flag(BuilderFlag.DISABLE_TIMING_CACHE),
            error_on_miss=config.get_flag(BuilderFlag.ERROR_ON_TIMING_CACHE_MISS)), \
            progress.phase("Building plan", 2) as building:
        manifest, sections = _build_phases(model, config, passes, building, dump_dir,
                                           after_pass)
    return manifest, sections


def _with_patterns(passes: list[ModulePass], config: BuilderConfig,
                   pattern_nodes: dict[str, list[str]]) -> list[ModulePass]:
    """`passes` with assign-precision told which wildcards the build expanded (it reports a
    wildcard, not each node it named); one given the wildcards themselves (a list made by
    `pipeline_for` before expansion, as `ember debug` does) takes the expanded names."""
    from ember.passes.assign_precision import AssignPrecision
    from ember.passes.precision_policy import format_patterns

    options = config.precision_options()
    out: list[ModulePass] = []
    for p in passes:
        if isinstance(p, AssignPrecision):
            if "*" in p.layer_precisions + p.output_types:
                p = dataclasses.replace(p, layer_precisions=options["layer_precisions"],
                                        output_types=options["output_types"],
                                        names_checked=True)
            p = dataclasses.replace(p, patterns=format_patterns(pattern_nodes))
        out.append(p)
    return out


def _build_phases(model: onnx.ModelProto | str | os.PathLike | bytes, config: BuilderConfig,
                  passes: list[ModulePass], building: progress.Phase,
                  dump_dir: str | os.PathLike | None, after_pass: AfterPass | None
                  ) -> tuple[dict, dict]:
    """build_model's work, reported as its phases: the passes (a step each), then packing."""
    dump = None
    if dump_dir is not None:  # checked before any work
        from ember.compiler.opt import StageDump

        dump = StageDump(dump_dir, passes)
    proto, _ = load_model(model)
    _check_layer_names(proto, config)
    if config.flags & REFIT_FLAGS and (config.get_flag(BuilderFlag.INT8) or any(
            n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in proto.graph.node)):
        raise UnsupportedError("REFIT / STRIP_PLAN with INT8 (calibration or Q/DQ nodes) is "
                               "not implemented: the quantized weights are baked into the "
                               "plan, so nothing could be refit")
    if config.get_flag(BuilderFlag.INT8):  # calibrated into Q/DQ, which fold-qdq lowers
        from ember.compiler.calibrate import int8_model

        proto = int8_model(proto, config.int8_calibrator, profiles=config.profiles,
                           exclude=sorted(config.layer_precisions))
    proto, symbols = _apply_profiles(proto, config)
    module = import_onnx(proto)
    _check_fp8_plugins(module, config)
    if symbols:  # passes read the profile from the module (fold-constants, emit-cuda, ...)
        set_symbol_ranges(module, symbols)
    refit = config.flags & REFIT_FLAGS
    trace = None
    if refit:  # the folding passes keep each weight's recipe
        from ember.compiler.refit_build import blame, start_trace

        trace = start_trace(module, proto)
    with progress.phase("Running passes", len(passes)) as ran:
        def each_pass(index: int, p: ModulePass, module: Any) -> None:
            if trace is not None:
                blame(trace, p.name)
            if after_pass is not None:
                after_pass(index, p, module)
            ran.step()

        if dump is not None:
            dump.run(module, passes, after_pass=each_pass)
        else:
            # verified once, at the end: after every pass it is most of a build's time (`ember
            # opt` and --dump-dir builds verify after each pass)
            run_passes(module, passes, after_pass=each_pass, verify="last")
    building.step()
    with progress.phase("Packing plan", 1) as packing:
        weight_refs: dict[int, str] = {}
        packed = pack(module, profiles=[p.shapes for p in config.profiles],
                      target_arch=config.target_arch, cpu_fallback=config.allow_cpu_fallback,
                      weight_refs=weight_refs, compatible=config.hardware_compatibility_level
                      is HardwareCompatibilityLevel.AMPERE_PLUS)
        sections = dict(packed.sections)
        if refit:
            from ember.compiler.refit_build import refit_sections

            sections = refit_sections(module, packed.manifest, sections, weight_refs,
                                      strip=bool(config.flags & BuilderFlag.STRIP_PLAN))
        packing.step()
    building.step()
    return packed.manifest.to_json(), sections


AMPERE = "sm_80"  # the arch an AMPERE_PLUS build compiles for


def _compatible(config: BuilderConfig) -> BuilderConfig:
    """The config a build runs: an AMPERE_PLUS one for sm_80, with the cost model's tactics
    (the packer then marks the plan "ampere+"); any other as it is."""
    if config.hardware_compatibility_level is not HardwareCompatibilityLevel.AMPERE_PLUS \
            or config.target_arch is None or config.autotune:
        return config  # (check() refuses the last two)
    return dataclasses.replace(config, target_arch=AMPERE, autotune=False)


def _layer_name(layer: Any, where: str) -> str:
    """An ILayer's name, or an ONNX node name given as a string."""
    name = layer if isinstance(layer, str) else getattr(layer, "name", None)
    if not isinstance(name, str) or not name:
        raise EmberError(f"{where}: {layer!r} is neither a layer nor a node name")
    return name


def _check_pattern(name: str, flag: str) -> str:
    if name.count("*") > 1:
        raise EmberError(f"{flag}: layer name '{name}' holds {name.count('*')} wildcards; "
                         "trtexec's spelling allows one '*' per name")
    return name


def _matches(pattern: str, name: str) -> bool:
    """trtexec's one-wildcard match: '*' stands for any run of characters (none too)."""
    from ember.passes.precision_policy import pattern_matches

    return pattern_matches(pattern, name)


# ops whose output types the model fixes, which a wildcard leaves alone (a name still pins them)
_TYPE_FIXED_OPS = {"Cast", "CastLike", "QuantizeLinear", "DequantizeLinear",
                   "DynamicQuantizeLinear"}


def _constant_nodes(model: onnx.ModelProto) -> set[str]:
    """The named nodes whose inputs are all constant (initializers, Constant nodes and what
    they compute): the build folds them, so no layer of theirs runs."""
    known = {t.name for t in model.graph.initializer} | {""}
    constant = set()
    for node in model.graph.node:
        if all(i in known for i in node.input) and not node.op_type.startswith(
                ("Random", "Multinomial")):
            known.update(node.output)
            constant.add(node.name)
    return constant


def _fp32_outputs(model: onnx.ModelProto) -> dict[str, set[int]]:
    """Each named node's FP32 outputs, by index (ONNX shape inference's types; an output of
    unknown type counts as FP32)."""
    graph = model.graph
    try:
        graph = onnx.shape_inference.infer_shapes(model).graph
    except Exception:  # noqa: BLE001 (a model inference cannot type: types from the graph)
        pass
    types = {vi.name: vi.type.tensor_type.elem_type
             for vi in [*graph.input, *graph.output, *graph.value_info]
             if vi.type.HasField("tensor_type")}
    types.update((t.name, t.data_type) for t in graph.initializer)
    return {n.name: {i for i, out in enumerate(n.output)
                     if out and types.get(out, onnx.TensorProto.FLOAT) == onnx.TensorProto.FLOAT}
            for n in graph.node if n.name}


def expand_layer_patterns(model: onnx.ModelProto, config: BuilderConfig) -> BuilderConfig:
    """`config` with the wildcard names of its per-layer precisions and output types (trtexec's
    `--layerPrecisions=*:fp16`) replaced by the model's nodes they match: a node named exactly
    keeps its own entry (its precision, or that output's type; a name in one table leaves the
    other's patterns to apply), else the last pattern given that matches it applies. As
    trtexec skips layers of non-activation types, a pattern skips what a precision cannot
    change: nodes with no FP32 output (integer ones, and those the model already has in
    FP16/BF16: precisions apply to FP32 tensors), an output type the outputs that are not
    FP32, casts and Q/DQ nodes, whose types the model fixes, and nodes of constants only, which
    the build folds away; a pattern's type for every output (trtexec's single type) leaves a
    node with a type named for any of its outputs alone. A pattern that matches no node is an
    error (as a misspelt name is); one that matches only nodes named exactly matches."""
    return _expand_patterns(model, config)[0]


def _expand_patterns(model: onnx.ModelProto, config: BuilderConfig
                     ) -> tuple[BuilderConfig, dict[str, list[str]]]:
    """`expand_layer_patterns`, and each pattern's nodes: those whose entry it gave (for
    assign-precision's `patterns`, which warns about the pattern, not each node)."""
    from ember.passes.precision_policy import EVERY_OUTPUT

    def is_pattern(name: str) -> bool:
        return "*" in name

    precision_patterns = {n: p for n, p in config.layer_precisions.items() if is_pattern(n)}
    type_patterns = {k: p for k, p in config.layer_output_types.items() if is_pattern(k[0])}
    if not precision_patterns and not type_patterns:
        return config, {}
    source: dict[tuple, str] = {}  # an entry a pattern gave -> that pattern
    precisions = {n: p for n, p in config.layer_precisions.items() if not is_pattern(n)}
    types = {k: p for k, p in config.layer_output_types.items() if not is_pattern(k[0])}
    named_precisions, named_types = set(precisions), set(types)
    floats = _fp32_outputs(model)
    folded = _constant_nodes(model)
    matched: set[str] = set()  # a pattern matching only exactly named nodes still matches
    for node in model.graph.node:
        name = node.name
        if not name:
            continue
        hits = [p for p in precision_patterns if _matches(p, name)]
        matched.update(hits)
        settable = node.op_type not in _TYPE_FIXED_OPS and name not in folded \
            and floats.get(name)
        if hits and settable and name not in named_precisions:
            precisions[name] = precision_patterns[hits[-1]]
            source[("precision", name)] = hits[-1]
        for (pattern, index), precision in type_patterns.items():  # in order: the last wins
            if _matches(pattern, name):
                matched.add(pattern)
                every = index == EVERY_OUTPUT and floats.get(name) \
                    and not any(n == name for n, _ in named_types)
                if settable and (every or index in floats.get(name, ()) \
                        and (name, index) not in named_types):
                    types[(name, index)] = precision
                    source[("type", name, index)] = pattern
    unmatched = sorted(({*precision_patterns} | {p for p, _ in type_patterns}) - matched)
    if unmatched:
        raise EmberError(f"per-layer precision pattern(s) {', '.join(map(repr, unmatched))} "
                         "match no node of the model (layers are named by ONNX node name)")
    nodes: dict[str, list[str]] = {p: [] for p in (*precision_patterns,
                                                   *(p for p, _ in type_patterns))}
    for key, pattern in source.items():
        if key[1] not in nodes[pattern]:
            nodes[pattern].append(key[1])
    return dataclasses.replace(config, layer_precisions=precisions,
                               layer_output_types=types), nodes


def _check_output_type_counts(model: onnx.ModelProto, config: BuilderConfig) -> None:
    """A "+" list of output types (trtexec's SPLIT:fp16+fp32) gives one type per output: each
    layer it names (a pattern: each node it matches that no full name gives types) must have
    as many outputs, as trtexec requires (one type is every output's)."""
    named = {n for n, _ in config.layer_output_types if "*" not in n}
    for name, count in config.layer_output_type_counts.items():
        for node in model.graph.node:
            if node.name != name and ("*" not in name or not _matches(name, node.name)
                                      or node.name in named):
                continue
            if len(node.output) != count:
                raise EmberError(f"--layer-output-types: layer '{node.name}' has "
                                 f"{len(node.output)} output(s) but {count} types are given "
                                 f"for {'it' if name == node.name else repr(name)} (a '+' "
                                 f"list: layer_output_type_counts['{name}'] = {count}); give "
                                 "one type per output, or one type for every output")


def _check_layer_names(model: onnx.ModelProto, config: BuilderConfig) -> None:
    """Per-layer precisions and placements must name nodes of the model (a typo is never
    ignored)."""
    names = [n for n in config.layer_precisions] + [n for n, _ in config.layer_output_types] \
        + [n for n in config.device_types]
    if not names:
        return
    nodes = {n.name for n in model.graph.node}
    unknown = sorted({n for n in names if n not in nodes})
    if unknown:
        raise EmberError(f"per-layer precision or placement names "
                         f"{', '.join(repr(n) for n in unknown)}, which the model has no node "
                         "of (layers are named by ONNX node name)")


def _should_autotune(config: BuilderConfig) -> bool:
    # a forced tile or another SM count is for the cost model: the autotuner would time (and
    # choose) for the GPU present instead
    given = [f"{f}={getattr(config, f)!r}" for f in ("forced_tile", "sm_count")
             if getattr(config, f) is not None]
    if given:
        if config.autotune:
            raise EmberError(f"{', '.join(given)} and autotune=True: the autotuner would "
                             "replace the cost model's choice they make")
        return False
    if config.autotune is False:
        return False
    from ember.runtime.arch import parse_arch

    present = detect_arch()
    same = present is not None and parse_arch(present) == parse_arch(str(config.target_arch))
    if config.autotune and not same:
        raise EmberError(f"autotune needs a {config.target_arch} GPU to time tactics on; "
                         f"the GPU here is {present or 'absent'}")
    return same


def pipeline_for(config: BuilderConfig) -> list[ModulePass]:
    """The passes a build with `config` runs, with their options: the config's pipeline, then
    whatever of convert-nn-to-kernel, assign-layouts, fuse-elementwise, fuse-epilogues and
    fuse-strided-reads it lacks (assign-layouts with the config's I/O formats; conv NCHW in GPU
    builds until the CUDA conv template reads NHWC, `assign_layouts.CUDA_CONV_NHWC`; NC4HW4 as
    `config.packed_format` says, else `assign_layouts.PACKED_FORMAT`; left out when
    `config.assign_layouts` is off),
    and for a CUDA target choose-formats before assign-layouts (each 4-D kernel's format for
    the least kernel + reformat time: measured on the GPU when the build autotunes, else by the
    cost model), fold-channel-pad and space-to-depth-stem after it and select-tactics (the cost
    model's tactic on each conv/matmul op, with the config's `sm_count` and `forced_tile`;
    timed on the GPU present when the build autotunes); then plan-memory (arena offsets) and,
    for a CUDA target, emit-cuda (each kernel's CUDA C, or its host fallback), which the packer
    compiles.
    With FP16 / BF16 / TF32 or per-layer precisions, assign-precision (with the config's
    options) runs after the nn-level optimizations, before kmajor-matmul-weights and
    convert-nn-to-kernel. `BuilderConfig(optimize=False)` gives the
    "unoptimized" pipeline (with assign-precision too). `pipeline_text` spells the list in
    `ember-opt -p` syntax. assign-precision is told the names are nodes of the model
    (`names_checked`: the build checks them), so that one folded away at build time is
    reported as such; `build_model` adds the wildcards it expanded (`patterns`)."""
    from ember.passes import assign_layouts, make_pass
    from ember.passes.assign_precision import AssignPrecision

    config = _compatible(config)  # an AMPERE_PLUS build's passes are sm_80's
    precision = config.precision_options()
    if config.target_arch is None:
        given = [f for f in ("sm_count", "forced_tile") if getattr(config, f) is not None]
        if given:
            raise EmberError(f"BuilderConfig {', '.join(given)}: tactics are chosen for CUDA "
                             "targets only; give target_arch")

    def with_precision(names: list[str]) -> list[str]:
        # before the passes that read element types (kmajor-matmul-weights) and the kernels
        if precision and "assign-precision" not in names:
            at = next((i for i, n in enumerate(names)
                       if n in ("pad-conv-channels", "kmajor-matmul-weights",
                                "convert-nn-to-kernel")), len(names))
            names.insert(at, "assign-precision")
        return names

    host = config.host_layers()
    default_cpu = config.default_device_type is DeviceType.CPU
    fallback = config.get_flag(BuilderFlag.GPU_FALLBACK)
    if host and config.target_arch is None:
        raise EmberError(f"set_device_type(..., DeviceType.CPU) for {', '.join(host)}: a "
                         "build without target_arch runs every layer on the CPU already")
    if fallback and config.target_arch is None:
        raise UnsupportedError("BuilderFlag.GPU_FALLBACK: a build without target_arch makes a "
                               "CPU plan, with no GPU to fall back to; give target_arch")

    def make(name: str) -> ModulePass:
        if name == "assign-precision" and precision:
            return AssignPrecision(**precision, names_checked=True)
        if name == "emit-cuda" and (host or default_cpu or fallback):
            from ember.codegen.emit_cuda import EmitCuda

            # the layers placed on the CPU get no kernel, but those the CPU cannot run
            gpu = sorted(n for n, d in config.device_types.items() if d is DeviceType.GPU)
            return EmitCuda(host="*" if default_cpu else ",".join(host),
                            gpu=",".join(gpu) if default_cpu else "", gpu_fallback=fallback)
        return make_pass(name)

    if not config.optimize:
        return [make(n) for n in with_precision(resolve_passes("unoptimized"))] + [
            make("plan-memory")] + ([make("emit-cuda")] if config.target_arch else [])
    names = resolve_passes(config.pipeline)
    if "fold-qdq" not in names and "convert-onnx-to-nn" in names:
        # Q/DQ convs and matmuls run on int8 (on the GPU: those the INT8 tensor cores take)
        names.insert(names.index("convert-onnx-to-nn") + 1, "fold-qdq")
    if config.target_arch is not None:  # tensor cores read whole 16-byte chunks, K-major
        names += [n for n in ("pad-conv-channels", "kmajor-matmul-weights",
                              "kmajor-matmul-operands") if n not in names]
    if config.target_arch is not None and tensor_core_target(config.target_arch) \
            and "fold-qdq" in names and "fold-quantize-scales" not in names:
        # INT8 kernels compute quantizes as TensorRT's do: the scales folded
        at = names.index("convert-nn-to-kernel") if "convert-nn-to-kernel" in names \
            else len(names)
        names.insert(at, "fold-quantize-scales")
    names += [n for n in ("convert-nn-to-kernel", "assign-layouts") if n not in names]
    source = _format_source(config)
    if source == "model" and config.sm_count is not None:
        raise EmberError(f"BuilderConfig sm_count={config.sm_count}: choose-formats' cost model "
                         "(codegen/format_costs.py) assumes gemm_tiles.SM_COUNT "
                         "multiprocessors; give format_choice='preferred' with it")
    if source is not None and "choose-formats" not in names:
        names.insert(names.index("assign-layouts"), "choose-formats")
    if config.target_arch is not None and "fold-channel-pad" not in names:
        names.insert(names.index("assign-layouts") + 1, "fold-channel-pad")
    if config.target_arch is not None and "space-to-depth-stem" not in names:
        names.insert(names.index("fold-channel-pad") + 1, "space-to-depth-stem")
    names += [n for n in ("fuse-elementwise", "fuse-epilogues", "cancel-requantize",
                          "fuse-strided-reads") if n not in names]
    if _hopper(config.target_arch) and "fuse-shortcut-convs" not in names:
        names.insert(names.index("fuse-epilogues") + 1, "fuse-shortcut-convs")
    if config.target_arch is not None and "tabulate-int8-chains" not in names \
            and "cancel-requantize" in names:
        names.insert(names.index("cancel-requantize") + 1, "tabulate-int8-chains")
    if config.target_arch is not None and tensor_core_target(config.target_arch) \
            and "fuse-attention-kernels" not in names \
            and "fuse-strided-reads" in names:
        names.insert(names.index("fuse-strided-reads") + 1, "fuse-attention-kernels")
    if config.target_arch is not None and "select-tactics" not in names:
        names.append("select-tactics")
    passes: list[ModulePass] = []
    for name in with_precision(names):
        if name == "select-tactics" and config.target_arch is not None:
            from ember.codegen.select_tactics import SelectTactics

            limit = config.memory_pool_limits.get(MemoryPoolType.WORKSPACE)
            passes.append(SelectTactics(
                arch=config.target_arch, tile=config.forced_tile or "",
                autotune=_should_autotune(config),
                **({} if config.sm_count is None else {"sms": config.sm_count}),
                **({} if limit is None else {"workspace": int(limit)})))
        elif name == "fuse-shortcut-convs" and config.target_arch is not None:
            from ember.codegen.fuse_shortcut_convs import FuseShortcutConvs

            passes.append(FuseShortcutConvs(arch=config.target_arch))
        elif name == "fold-qdq" and config.target_arch is not None:
            from ember.passes.fold_qdq import FoldQDQ

            # E4M3 convs and matmuls on FP8 tensor cores: sm_89 and newer
            # int8 convs and matmuls on INT8 tensor cores: sm_80 and newer (older targets run
            # them dequantized, in FP32)
            passes.append(FoldQDQ(multiple=16, fp8=_fp8_tensor_cores(config.target_arch),
                                  int8=tensor_core_target(config.target_arch)))
        elif name == "choose-formats" and config.target_arch is not None:
            from ember.passes.choose_formats import ChooseFormats

            passes.append(ChooseFormats(
                source=source or "model", arch=config.target_arch,
                io_formats=",".join(config.allowed_io_formats),
                packed=assign_layouts.PACKED_FORMAT if config.packed_format is None
                else config.packed_format))
        elif name != "assign-layouts":
            passes.append(make(name))
        elif config.assign_layouts:
            passes.append(assign_layouts.AssignLayouts(
                io_formats=",".join(config.allowed_io_formats),
                conv_nhwc=(assign_layouts.CPU_CONV_NHWC if config.target_arch is None
                           else assign_layouts.CUDA_CONV_NHWC),
                half_conv_nhwc=config.target_arch is not None,
                packed=assign_layouts.PACKED_FORMAT if config.packed_format is None
                else config.packed_format))
    if "plan-memory" not in names:  # the offsets are of the final kernels
        passes.append(make("plan-memory"))
    if config.target_arch is not None and "emit-cuda" not in names:
        passes.append(make("emit-cuda"))
    return passes


FORMAT_CHOICES = ("measured", "model", "preferred")


def _check_fp8_plugins(module: Any, config: BuilderConfig) -> None:
    """TensorRT 10's BuilderFlag.FP8: a plugin with a float8 input or output needs it."""
    if config.get_flag(BuilderFlag.FP8):
        return
    from ember.dialects.dtypes import FLOAT8_SATURATING
    from ember.dialects.nn.plugin import PluginOp
    from ember.dialects.origin import origin_of
    from ember.dialects.tensor_types import element_type_of

    for op in module.walk():
        if isinstance(op, PluginOp) and any(
                isinstance(element_type_of(v), FLOAT8_SATURATING)
                for v in (*op.operands, *op.results)):
            name = ", ".join(origin_of(op)) or "<unnamed>"
            raise UnsupportedError(f"plugin node '{name}' ({op.plugin.data}) takes or gives a "
                                   "float8 tensor: set "
                                   "BuilderFlag.FP8 to allow plugins with FP8 inputs and "
                                   "outputs (ember build --fp8), as TensorRT 10 asks")


def tensor_core_target(arch: str) -> bool:
    """Whether `arch` runs ember's tensor-core kernels (sm_80 and newer: mma.sync m16n8k16 and
    m16n8k32, cp.async): its FP16/BF16 convs and matmuls, and fold-qdq's INT8 ones. Older
    targets build FP32 only (`BuilderConfig.check` refuses the rest)."""
    from ember.runtime.arch import parse_arch

    return parse_arch(arch) >= (8, 0)


def _fp8_tensor_cores(arch: str) -> bool:
    """Whether `arch` has FP8 (E4M3) tensor cores (sm_89 and newer: fold-qdq's FP8 convs)."""
    from ember.runtime.arch import parse_arch

    return parse_arch(arch) >= (8, 9)


def _hopper(arch: str | None) -> bool:
    """Whether a build for `arch` has Hopper's copy engine and wgmma (fuse-shortcut-convs)."""
    from ember.codegen.templates.gemm_wgmma import targets

    return targets(arch)


def _format_source(config: BuilderConfig) -> str | None:
    """choose-formats' cost source for `config` (None: the build does not run it: CPU builds,
    `assign_layouts` off, or format_choice "preferred")."""
    choice = config.format_choice
    if choice is not None and choice not in FORMAT_CHOICES:
        raise EmberError(f"format_choice must be one of {', '.join(FORMAT_CHOICES)} (or None), "
                         f"not {choice!r}")
    if config.target_arch is None or not config.assign_layouts or choice == "preferred":
        return None
    measured = _should_autotune(config)
    if choice == "measured" and not measured:
        raise EmberError(f"format_choice='measured' times kernels on a {config.target_arch} GPU "
                         "while building; this build does not autotune (no such GPU here, or "
                         "autotune=False): use 'model'")
    return choice or ("measured" if measured else "model")


def detect_arch() -> str | None:
    """The arch of GPU 0 (e.g. "sm_90"), or None where there is no GPU."""
    from ember.runtime.cuda import gpu_arch

    return gpu_arch()


PRECISION_OPTIONS = ("fp16", "bf16", "tf32", "layer_precisions", "layer_output_types",
                     "precision_constraints")


def precision_config(config: BuilderConfig, *, fp16: bool = False, bf16: bool = False,
                     tf32: bool = False, layer_precisions: str | dict | None = None,
                     layer_output_types: str | dict | None = None,
                     precision_constraints: str | None = None) -> BuilderConfig:
    """Set the precision options of `ember.compile` / `ember.backend` / the CLI on `config`."""
    for flag, on in ((BuilderFlag.FP16, fp16), (BuilderFlag.BF16, bf16),
                     (BuilderFlag.TF32, tf32)):
        if on:
            config.set_flag(flag)
        else:
            config.clear_flag(flag)
    if layer_precisions:
        config.set_layer_precisions(layer_precisions)
    if layer_output_types:
        config.set_layer_output_types(layer_output_types)
    if precision_constraints is not None:
        config.set_precision_constraints(precision_constraints)
    return config


def refuse_unknown_options(options: dict[str, Any], where: str, known: tuple[str, ...]) -> None:
    """Options nobody reads are an error naming them, never ignored."""
    if options:
        raise EmberError(f"{where}: unknown option(s) {', '.join(sorted(options))}; known: "
                         f"{', '.join(known)}")


def compile(model: onnx.ModelProto | str | os.PathLike | bytes, *, fp16: bool = False,
            bf16: bool = False, tf32: bool = False, device: str = "auto",
            arch: str | None = None, pipeline: str = "default",
            profiles: list[OptimizationProfile] | None = None,
            layer_precisions: str | dict | None = None,
            layer_output_types: str | dict | None = None,
            precision_constraints: str | None = None, **options: Any):
    """Build and load in one step: `ember.compile("model.onnx")(x=...)` -> outputs by name.

    CUDA kernels are built for `arch`, or for the GPU present when device is "auto"/"cuda".
    `profiles`: optimization profiles for a model with dynamic input dims. Strict FP32 unless
    `fp16` / `bf16` / `tf32` allow lower precisions (Polygraphy's defaults); `layer_precisions`
    ("NODE:fp32,..." or {node: precision}) and `layer_output_types` ("NODE:fp16" or
    {(node, index): precision}) with `precision_constraints` ("obey", "prefer", "none") pin
    layers. Unknown options are an error."""
    from ember.runtime.engine import Engine
    from ember.runtime.plan import read_plan

    refuse_unknown_options(options, "ember.compile",
                           ("device", "arch", "pipeline", "profiles", *PRECISION_OPTIONS))
    config = precision_config(BuilderConfig(pipeline=pipeline, profiles=list(profiles or [])),
                              fp16=fp16, bf16=bf16, tf32=tf32,
                              layer_precisions=layer_precisions,
                              layer_output_types=layer_output_types,
                              precision_constraints=precision_constraints)
    if arch is None and device != "cpu":
        arch = detect_arch()
        if arch is None and device == "cuda":
            raise EmberError("device='cuda' was asked for, but no GPU is visible")
    config.target_arch = arch
    manifest, sections = build_model(model, config)
    return Engine(read_plan(plan_bytes(manifest, sections)), device)
