"""INT8 calibration (TensorRT's `BuilderFlag.INT8` + `config.int8_calibrator`) as explicit Q/DQ:
the FP32 model runs on the calibrator's batches under onnxruntime, onnxruntime's calibrator
finds each activation's range with the calibrator's algorithm, and onnxruntime's quantizer
writes QuantizeLinear/DequantizeLinear nodes (symmetric int8 activations, per-channel int8
weights, as TensorRT quantizes) that fold-qdq turns into int8 kernels. The calibration cache
is TensorRT's text table, one `tensor: scale` line per activation.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import re
import struct
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ember.codegen import progress
from ember.compiler.onnx_control import NOT_FOLDED
from ember.compiler.ort_compat import max_ir_version
from ember.errors import EmberError
from ember.runtime.trt_types import Numbered


class CalibrationAlgoType(Numbered):
    """TensorRT's calibration algorithms, numbered as TensorRT numbers them."""

    LEGACY_CALIBRATION = 0
    ENTROPY_CALIBRATION = 1
    ENTROPY_CALIBRATION_2 = 2
    MINMAX_CALIBRATION = 3


# each algorithm's name in a calibration cache's header (TensorRT's spellings)
CACHE_NAMES = {CalibrationAlgoType.LEGACY_CALIBRATION: "LegacyCalibration",
               CalibrationAlgoType.ENTROPY_CALIBRATION: "EntropyCalibration",
               CalibrationAlgoType.ENTROPY_CALIBRATION_2: "EntropyCalibration2",
               CalibrationAlgoType.MINMAX_CALIBRATION: "MinMaxCalibration"}
# bins of the |x| histograms the entropy and quantile methods search (TensorRT's 2048)
HISTOGRAM_BINS = 2048


class IInt8Calibrator:
    """TensorRT's calibrator interface. A subclass gives `get_batch_size()`, `get_batch(names)`
    (one buffer per input, in `names` order, or None when the data is exhausted; a buffer is a
    device pointer, a host address or a numpy array holding the input's shape and dtype),
    `read_calibration_cache()` (bytes or None) and `write_calibration_cache(cache)`; subclasses
    of this class itself also `get_algorithm()`. Each batch is the network input's shape
    (explicit batch): `get_batch_size()` must be 1 or that shape's first dim."""

    def __init__(self) -> None:
        pass

    def get_batch_size(self) -> int:
        raise EmberError(f"{type(self).__name__}.get_batch_size() is not implemented: a "
                         "calibrator gives the batch size of its batches")

    def get_batch(self, names: Sequence[str]) -> list | None:
        raise EmberError(f"{type(self).__name__}.get_batch(names) is not implemented: a "
                         "calibrator gives one buffer per input name, or None at the end")

    def read_calibration_cache(self) -> bytes | None:
        return None

    def write_calibration_cache(self, cache: memoryview) -> None:
        return None

    def get_algorithm(self) -> CalibrationAlgoType:
        raise EmberError(f"{type(self).__name__}.get_algorithm() is not implemented: subclass "
                         "IInt8EntropyCalibrator2, IInt8MinMaxCalibrator, "
                         "IInt8EntropyCalibrator or IInt8LegacyCalibrator, or give the "
                         "algorithm")


class IInt8EntropyCalibrator2(IInt8Calibrator):
    """Entropy calibration (TensorRT's recommended one): each activation's threshold is the one
    whose int8 histogram is closest (KL divergence) to the FP32 histogram."""

    def get_algorithm(self) -> CalibrationAlgoType:
        return CalibrationAlgoType.ENTROPY_CALIBRATION_2


class IInt8EntropyCalibrator(IInt8Calibrator):
    """TensorRT's first entropy calibrator; ember runs the same KL search as for
    IInt8EntropyCalibrator2 (onnxruntime's), under its own cache name."""

    def get_algorithm(self) -> CalibrationAlgoType:
        return CalibrationAlgoType.ENTROPY_CALIBRATION


class IInt8MinMaxCalibrator(IInt8Calibrator):
    """Each activation's range is the largest |value| seen in the batches."""

    def get_algorithm(self) -> CalibrationAlgoType:
        return CalibrationAlgoType.MINMAX_CALIBRATION


class IInt8LegacyCalibrator(IInt8Calibrator):
    """The quantile method: each activation's range is the `get_quantile()` quantile (in (0,
    1], e.g. 0.9999) of its |values|. TensorRT's regression method is not implemented, so
    `get_regression_cutoff()` is not read (the build warns), nor are the histogram caches."""

    def get_algorithm(self) -> CalibrationAlgoType:
        return CalibrationAlgoType.LEGACY_CALIBRATION

    def get_quantile(self) -> float:
        raise EmberError(f"{type(self).__name__}.get_quantile() is not implemented: a legacy "
                         "calibrator gives the quantile of |x| its ranges keep, e.g. 0.9999")

    def get_regression_cutoff(self) -> float:
        raise EmberError(f"{type(self).__name__}.get_regression_cutoff() is not implemented")

    def read_histogram_cache(self, length: int) -> bytes | None:
        return None

    def write_histogram_cache(self, ptr: int, length: int) -> None:
        return None


class DataCalibrator(IInt8Calibrator):
    """Batches from arrays (`ember build --int8 --calib-data`): each item of `batches` maps
    input names to arrays whose leading axis holds samples, a multiple of the input's batch
    dim (split into batches of the input's shape); `cache` is a calibration cache file, read
    when it exists and written after calibrating. Without an `algorithm`, the cache's (when
    there is one), else entropy."""

    def __init__(self, batches: Sequence[dict[str, np.ndarray]],
                 algorithm: CalibrationAlgoType | None = None, cache: str | Path | None = None,
                 quantile: float = 0.99999) -> None:
        super().__init__()
        self.batches, self.algorithm, self.cache, self.quantile = batches, algorithm, cache, \
            quantile
        self.shapes: dict[str, tuple[int, ...]] = {}
        self._next: Any = None

    def set_input_shapes(self, shapes: dict[str, tuple[int, ...]]) -> None:
        """The network inputs' batch shapes (the build calls it before the first batch)."""
        self.shapes = dict(shapes)

    def batch_count(self) -> int:
        """How many batches get_batch gives (after set_input_shapes); 0 where the data does not
        fit the inputs (get_batch then says how)."""
        total = 0
        for arrays in self.batches:
            try:
                counts = {np.shape(arrays[n])[0] // shape[0] for n, shape in self.shapes.items()}
            except (KeyError, IndexError, ZeroDivisionError, TypeError):
                return 0
            if len(counts) != 1:
                return 0
            total += counts.pop()
        return total

    def get_algorithm(self) -> CalibrationAlgoType:
        if self.algorithm is not None:
            return self.algorithm
        cache = self.read_calibration_cache() or b""
        header = _HEADER.fullmatch(cache.split(b"\n", 1)[0].decode(errors="replace").strip())
        names = {v: k for k, v in CACHE_NAMES.items()}
        if header is not None and header.group(1) in names:
            return names[header.group(1)]
        return CalibrationAlgoType.ENTROPY_CALIBRATION_2

    def get_quantile(self) -> float:
        return self.quantile

    def get_batch_size(self) -> int:
        return 1

    def get_batch(self, names: Sequence[str]) -> list | None:
        if self._next is None:
            self._next = self._split(names)
        return next(self._next, None)

    def _split(self, names: Sequence[str]):
        for index, arrays in enumerate(self.batches):
            missing = [n for n in names if n not in arrays]
            extra = [n for n in arrays if n not in names]
            if missing or extra:
                raise EmberError(f"calibration data #{index} has arrays "
                                 f"{', '.join(map(repr, arrays)) or 'none'}; the network's "
                                 f"inputs are {', '.join(map(repr, names))}")
            counts = set()
            for name in names:
                shape, array = self.shapes[name], arrays[name]
                if array.shape[1:] != shape[1:] or array.shape[0] % shape[0]:
                    raise EmberError(f"calibration data #{index}: '{name}' is {list(array.shape)}"
                                     f"; the input is {list(shape)}, so give [k*{shape[0]}, "
                                     f"{', '.join(map(str, shape[1:]))}]")
                counts.add(array.shape[0] // shape[0])
            if len(counts) > 1:
                raise EmberError(f"calibration data #{index}: the inputs hold different numbers "
                                 "of batches")
            for b in range(counts.pop() if counts else 0):
                yield [np.ascontiguousarray(arrays[n][b * self.shapes[n][0]:
                                                      (b + 1) * self.shapes[n][0]])
                       for n in names]

    def read_calibration_cache(self) -> bytes | None:
        if self.cache is not None and Path(self.cache).is_file():
            return Path(self.cache).read_bytes()
        return None

    def write_calibration_cache(self, cache: memoryview) -> None:
        if self.cache is not None:
            Path(self.cache).write_bytes(bytes(cache))


ALGORITHMS = {"entropy": CalibrationAlgoType.ENTROPY_CALIBRATION_2,
              "minmax": CalibrationAlgoType.MINMAX_CALIBRATION,
              "percentile": CalibrationAlgoType.LEGACY_CALIBRATION,
              "legacy": CalibrationAlgoType.LEGACY_CALIBRATION}


def load_calibration_data(path: str | Path) -> list[dict[str, np.ndarray]]:
    """`--calib-data`: an .npz of arrays by input name, or a folder of them (in name order)."""
    from ember.compiler.commands import load_npz

    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.npz"))
        if not files:
            raise EmberError(f"--calib-data {path}: the folder holds no .npz files")
        return [load_npz(f) for f in files]
    if not path.is_file():
        raise EmberError(f"--calib-data {path}: no such file or folder")
    return [load_npz(path)]


# -- the cache -------------------------------------------------------------------------------------
_HEADER = re.compile(r"(?:EMBER|TRT)-[^-\s]+-(\w+)")


def cache_text(algorithm: CalibrationAlgoType, scales: dict[str, np.float32]) -> bytes:
    """TensorRT's calibration table: a header naming the algorithm, then `tensor: scale` with
    the float32 scale's bits in hex, one line per tensor (sorted)."""
    lines = [f"EMBER-1-{CACHE_NAMES[algorithm]}"]
    lines += [f"{name}: {struct.pack('>f', float(scales[name])).hex()}" for name in sorted(scales)]
    return ("\n".join(lines) + "\n").encode()


def parse_cache(cache: bytes, algorithm: CalibrationAlgoType) -> dict[str, np.float32]:
    """A calibration table's scales; an error saying what is wrong with it."""
    try:
        lines = bytes(cache).decode().splitlines()
    except UnicodeDecodeError:
        raise EmberError("the calibration cache is not a text table") from None
    header = _HEADER.fullmatch(lines[0].strip()) if lines else None
    if header is None:
        raise EmberError("the calibration cache has no header line (EMBER-1-ALGORITHM or "
                         "TensorRT's TRT-VERSION-ALGORITHM)")
    if header.group(1) != CACHE_NAMES[algorithm]:
        raise EmberError(f"the calibration cache is of {header.group(1)}; the calibrator is "
                         f"{CACHE_NAMES[algorithm]}")
    scales = {}
    for number, line in enumerate(lines[1:], 2):
        name, sep, bits = line.rstrip().rpartition(": ")
        try:
            if not sep or not name or len(bits) != 8:
                raise ValueError
            scales[name] = np.float32(struct.unpack(">f", bytes.fromhex(bits))[0])
        except ValueError:
            raise EmberError(f"calibration cache line {number} is not 'tensor: 8 hex digits': "
                             f"{line!r}") from None
        if not np.isfinite(scales[name]) or scales[name] < 0:
            raise EmberError(f"calibration cache: tensor '{name}' has scale {scales[name]}")
    return scales


def _scale(amax: np.float32) -> np.float32:
    """The symmetric int8 scale onnxruntime's quantizer computes from a range [-amax, amax]."""
    return np.float32(np.float64(amax) * 2.0 / 254.0)


def _amax(scale: np.float32) -> np.float32:
    """A float32 range end whose scale (`_scale`) is exactly `scale`, so a cached table gives
    the very Q/DQ model that calibration gave."""
    amax = np.float32(np.float64(scale) * 127.0)
    for _ in range(8):
        got = _scale(amax)
        if got == scale:
            break
        amax = np.nextafter(amax, np.float32(np.inf if got < scale else -np.inf))
    return amax


# -- batches ---------------------------------------------------------------------------------------
def _is_device_pointer(ptr: int) -> bool:
    from ember.runtime import cuda

    if not cuda.cuda_available():
        return False
    cuda.default_device().set_current()
    err, kind = cuda.cu.cuPointerGetAttribute(
        cuda.cu.CUpointer_attribute.CU_POINTER_ATTRIBUTE_MEMORY_TYPE, ptr)
    if err != cuda.cu.CUresult.CUDA_SUCCESS:  # pageable host memory is unknown to the driver
        return False
    return int(kind) in (int(cuda.cu.CUmemorytype.CU_MEMORYTYPE_DEVICE),
                         int(cuda.cu.CUmemorytype.CU_MEMORYTYPE_UNIFIED))


def batch_array(buffer: Any, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """One input of a calibration batch as an array: a numpy array as it is (shape and dtype
    checked), a device pointer copied from the GPU, a host address read in place (copied)."""
    dtype = np.dtype(dtype)
    if isinstance(buffer, np.ndarray):
        if buffer.dtype != dtype or buffer.size != int(np.prod(shape)):
            raise EmberError(f"get_batch gave '{name}' a {buffer.dtype} array of shape "
                             f"{list(buffer.shape)}; the input is {dtype} {list(shape)}")
        return np.array(buffer.reshape(shape), copy=True)
    try:
        ptr = int(buffer) if not isinstance(buffer, bool | float) else 0
    except (TypeError, ValueError):
        ptr = 0
    if ptr <= 0:
        raise EmberError(f"get_batch gave '{name}' {buffer!r}: expected a device pointer, a host "
                         "address (an int) or a numpy array")
    out = np.empty(shape, dtype)
    if _is_device_pointer(ptr):
        from ember.runtime.cuda import copy_dtoh

        return copy_dtoh(out, ptr)
    raw = np.ctypeslib.as_array((ctypes.c_ubyte * out.nbytes).from_address(ptr))
    out.reshape(-1).view(np.uint8)[:] = raw
    return out


def _input_specs(model: onnx.ModelProto, profiles: Sequence[Any]
                 ) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Each network input's batch shape (a dynamic dim: the first profile's opt, as TensorRT
    calibrates) and dtype."""
    inits = {t.name for t in model.graph.initializer}
    specs = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        t = vi.type.tensor_type
        opt = profiles[0].shapes.get(vi.name, (None, None))[1] if profiles else None
        dims = []
        for axis, d in enumerate(t.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                dims.append(d.dim_value)
            elif opt is not None:
                dims.append(int(opt[axis]))
            else:
                raise EmberError(f"calibration: input '{vi.name}' dim {axis} is dynamic; give an "
                                 "optimization profile (its opt shape is calibrated)")
        specs[vi.name] = (tuple(dims), np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)))
    return specs


class _Batches:
    """onnxruntime's CalibrationDataReader over a calibrator's get_batch; each batch given is a
    step of the build's "Calibrating" phase (`phase`), whose monitor may cancel there."""

    def __init__(self, calibrator: IInt8Calibrator,
                 specs: dict[str, tuple[tuple[int, ...], np.dtype]],
                 phase: progress.Phase | None = None) -> None:
        self.calibrator, self.specs, self.count, self.phase = calibrator, specs, 0, phase

    def get_next(self) -> dict[str, np.ndarray] | None:
        names = list(self.specs)
        buffers = self.calibrator.get_batch(names)
        if buffers is None:
            if not self.count:
                raise EmberError(f"{type(self.calibrator).__name__}.get_batch returned None at "
                                 "once: there is no calibration data (and no usable cache)")
            return None
        if not isinstance(buffers, list | tuple) or len(buffers) != len(names):
            raise EmberError(f"{type(self.calibrator).__name__}.get_batch({names}) must return "
                             f"a list of {len(names)} buffer(s) (one per name) or None, not "
                             f"{buffers!r}"[:300])
        self.count += 1
        batch = {n: batch_array(b, n, *self.specs[n]) for n, b in zip(names, buffers, strict=True)}
        if self.phase is not None:
            self.phase.step()
        return batch


# -- calibration -----------------------------------------------------------------------------------
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul",
           "DynamicQuantizeLinear", "ConvInteger", "MatMulInteger")


def _check_onnxruntime() -> None:
    """Calibration runs onnxruntime's calibrator and quantizer: one that has what is used."""
    import inspect

    try:
        from onnxruntime.quantization import quantize_static
    except ImportError as e:
        raise EmberError(f"INT8 calibration runs onnxruntime's quantizer, which cannot be "
                         f"imported here ({e}): pip install onnxruntime") from None
    if "calibration_cache_path" not in inspect.signature(quantize_static).parameters:
        import onnxruntime

        raise EmberError(f"INT8 calibration needs onnxruntime's quantize_static with "
                         f"calibration_cache_path (1.32 has it); this is onnxruntime "
                         f"{onnxruntime.__version__}")


def _op_types() -> list[str]:
    """The operators quantize_static quantizes by default (and so calibrates)."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return sorted(set(QLinearOpsRegistry) | set(QDQRegistry))


@contextlib.contextmanager
def _quiet():
    """onnxruntime's quantizer prints progress and logs advice on the root logger."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def _check_calibrator(calibrator: Any) -> CalibrationAlgoType:
    if not isinstance(calibrator, IInt8Calibrator):
        raise EmberError(f"config.int8_calibrator must subclass one of ember's calibrators "
                         f"(IInt8EntropyCalibrator2, IInt8MinMaxCalibrator, "
                         f"IInt8EntropyCalibrator, IInt8LegacyCalibrator), not "
                         f"{type(calibrator).__name__}")
    algorithm = calibrator.get_algorithm()
    if not isinstance(algorithm, CalibrationAlgoType):
        raise EmberError(f"{type(calibrator).__name__}.get_algorithm() must return a "
                         f"CalibrationAlgoType, not {algorithm!r}")
    size = calibrator.get_batch_size()
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise EmberError(f"{type(calibrator).__name__}.get_batch_size() must return an integer "
                         f"≥ 1, not {size!r}")
    return algorithm


def _calibrate(path: Path, calibrator: IInt8Calibrator, algorithm: CalibrationAlgoType,
               specs: dict, ops: list[str], work: Path) -> dict[str, np.float32]:
    """Each calibrated tensor's int8 scale. onnxruntime's calibrator runs the batches and keeps
    each tensor's range (min-max) or its histogram of |x| (HISTOGRAM_BINS bins, widened as
    larger values come, as TensorRT's); the quantile method is onnxruntime's percentile of
    it, the entropy threshold `entropy_amax`'s search over it."""
    from onnxruntime.quantization import CalibrationMethod, create_calibrator

    quantile = 1.0
    if algorithm is CalibrationAlgoType.LEGACY_CALIBRATION:
        quantile = calibrator.get_quantile()  # type: ignore[attr-defined]
        if isinstance(quantile, bool) or not isinstance(quantile, float | int) \
                or not 0 < quantile <= 1:
            raise EmberError(f"{type(calibrator).__name__}.get_quantile() must be in (0, 1], "
                             f"not {quantile!r}")
        if not isinstance(calibrator, DataCalibrator):
            warnings.warn(f"{type(calibrator).__name__}: ember's legacy calibration is the "
                          "quantile method; get_regression_cutoff() is not used", stacklevel=2)
    if algorithm is CalibrationAlgoType.MINMAX_CALIBRATION:
        method, options = CalibrationMethod.MinMax, {"symmetric": True}
    else:  # |x| histograms
        method = CalibrationMethod.Percentile
        options = {"symmetric": True, "num_bins": HISTOGRAM_BINS,
                   "percentile": 100.0 * float(quantile)}
    if isinstance(calibrator, DataCalibrator):
        calibrator.set_input_shapes({n: s for n, (s, _) in specs.items()})
    # the phase's steps: the batches, where the calibrator knows how many (ember's own; a
    # TensorRT-style one is read until get_batch returns None: 0 steps announced)
    batches = calibrator.batch_count() if isinstance(calibrator, DataCalibrator) else 0
    with _quiet(), progress.phase("Calibrating", batches) as phase:
        reader = _Batches(calibrator, specs, phase)
        ort = create_calibrator(path, ops, augmented_model_path=str(work / "augmented.onnx"),
                                calibrate_method=method, extra_options=options)
        ort.collect_data(reader)
        if algorithm in (CalibrationAlgoType.ENTROPY_CALIBRATION,
                         CalibrationAlgoType.ENTROPY_CALIBRATION_2):
            return {name: _scale(entropy_amax(hist, edges)) for name, (hist, edges, *_)
                    in ort.collector.histogram_dict.items()}
        ranges = ort.compute_data()
    scales = {}
    for name, data in ranges.items():
        lo, hi = (np.asarray(v, np.float32).reshape(()) for v in data.range_value)
        scales[name] = _scale(np.float32(max(abs(lo), abs(hi))))
    return scales


def entropy_amax(hist: np.ndarray, edges: np.ndarray, levels: int = 128) -> np.float32:
    """TensorRT's entropy calibration over a histogram of |x|: the threshold (a bin edge, at
    least `levels` bins up) whose int8 image of the clipped histogram, spread back over the
    bins, is nearest the histogram with the clipped counts folded into its last bin (least KL
    divergence); the largest such edge on ties. onnxruntime's own entropy search rounds the
    spread-back counts to integers, which picks far too small thresholds at this resolution.

    For candidate i (bins [0, i)), level j holds bins [ceil(j i / levels), ceil((j+1) i /
    levels)) with sum s_j over u_j non-zero bins, each of which Q gives s_j / (u_j S_i) (S_i
    the first i bins' sum); P is c_k / T (T all counts), the tail added to bin i-1. So
    KL(P||Q) = sum_k p_k log p_k - sum_j (sum of p over level j) log(s_j / (u_j S_i)), all
    from prefix sums: every candidate at once."""
    counts = np.asarray(hist, np.float64).copy()
    if counts.size > 1:  # a ReLU's spike of zeros would decide every candidate alone
        counts[0] = counts[1]
    total = counts.sum()
    if counts.size <= levels or not total:
        return np.float32(edges[-1])
    n = counts.size
    xlogx = np.where(counts > 0, counts * np.log(np.where(counts > 0, counts, 1.0)), 0.0)
    prefix = np.concatenate([[0.0], np.cumsum(counts)])
    nonzero = np.concatenate([[0.0], np.cumsum(counts > 0)])
    plogp_prefix = np.concatenate([[0.0], np.cumsum(xlogx)])
    i = np.arange(levels, n + 1)
    tail = total - prefix[i]
    last = counts[i - 1] + tail  # bin i-1 with the clipped counts
    a = plogp_prefix[i - 1] + np.where(last > 0, last * np.log(np.where(last > 0, last, 1.0)),
                                       0.0)
    bounds = (np.arange(levels + 1)[None, :] * i[:, None] + levels - 1) // levels
    sums = np.diff(prefix[bounds], axis=1)
    used = np.diff(nonzero[bounds], axis=1)
    mass = sums.copy()
    mass[:, -1] += tail  # P's mass over each level
    with np.errstate(divide="ignore", invalid="ignore"):
        logq = np.log(sums) - np.log(used) - np.log(prefix[i])[:, None]
        cross = np.where(sums > 0, mass * logq, 0.0).sum(axis=1)
    divergence = (a / total - np.log(total)) - cross / total
    divergence[(counts[i - 1] == 0) & (tail > 0)] = np.inf  # P has mass where Q has none
    best = len(divergence) - 1 - int(np.argmin(divergence[::-1]))
    return np.float32(edges[i[best]])


def _calibrated_tensors(path: Path, ops: list[str]) -> tuple[set[str], set[str]]:
    """(the tensors calibration gives a scale, every tensor of the model)."""
    from onnxruntime.quantization.calibrate import CalibraterBase

    with _quiet():
        base = CalibraterBase(path, ops)
        tensors, _ = base.select_tensors_to_calibrate(base.model)
    graph = base.model.graph
    names = {vi.name for vi in graph.input} | {o for n in graph.node for o in n.output}
    return set(tensors), names


def quantize(model: onnx.ModelProto, scales: dict[str, np.float32], path: Path,
             exclude: Sequence[str] = ()) -> onnx.ModelProto:
    """`model` with Q/DQ nodes from onnxruntime's quantize_static: activations symmetric int8
    with `scales`, weights int8 per channel (QDQ format, as TensorRT wants it). The nodes in
    `exclude` stay float, their inputs too (`float_inputs`)."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.calibrate import TensorData, TensorsData, save_tensors_data

    ranges = {name: TensorData(lowest=-_amax(s), highest=_amax(s)) for name, s in scales.items()}
    table = path.parent / "ranges.json"
    save_tensors_data(TensorsData(CalibrationMethod.MinMax, ranges), table)
    out = path.parent / "qdq.onnx"
    with _quiet():
        quantize_static(path, out, None, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=list(exclude), calibration_cache_path=table,
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    return float_inputs(onnx.load(out), set(exclude))


# single-input ops the quantizer runs between a dequantize and a quantize (their input and output
# quantized): an excluded layer reading one gets a float copy of it
_PASS_THROUGH = ("Relu", "LeakyRelu", "Clip", "Sigmoid", "MaxPool", "AveragePool",
                 "GlobalAveragePool", "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze",
                 "Resize")


def float_inputs(model: onnx.ModelProto, nodes: set[str]) -> onnx.ModelProto:
    """`model` with the named nodes reading their inputs in float: where an input is a
    quantize -> dequantize round trip, the value quantized; where that value comes from a
    quantized Relu / pool / reshape (the quantizer leaves an excluded layer's input quantized
    where its producer is quantized itself), a float copy of that op on its float input, and so
    on up. A layer kept out of INT8 then sees no int8 rounding of its inputs; other readers
    keep theirs."""
    producer = {o: n for n in model.graph.node for o in n.output}
    made: dict[str, str] = {}  # tensor -> its float copy

    def float_of(name: str, copies: list[onnx.NodeProto]) -> str:
        node = producer.get(name)
        if node is not None and node.op_type == "DequantizeLinear":
            q = producer.get(node.input[0])
            if q is not None and q.op_type == "QuantizeLinear":
                return float_of(q.input[0], copies)
        if node is not None and node.op_type in _PASS_THROUGH and node.input:
            data = float_of(node.input[0], copies)
            if data != node.input[0]:
                if name not in made:
                    copy = onnx.NodeProto()
                    copy.CopyFrom(node)
                    copy.name = f"{node.name or name}/float"
                    copy.input[0] = data
                    copy.output[:] = [f"{name}/float"] + [""] * (len(node.output) - 1)
                    copies.append(copy)
                    made[name] = copy.output[0]
                return made[name]
        return name

    nodes_out: list[onnx.NodeProto] = []
    for node in model.graph.node:
        if node.name in nodes:
            copies: list[onnx.NodeProto] = []
            node.input[:] = [float_of(x, copies) if x else x for x in node.input]
            nodes_out += copies
        nodes_out.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes_out)
    return model


def int8_model(model: onnx.ModelProto, calibrator: IInt8Calibrator | None, *,
               profiles: Sequence[Any] = (), exclude: Sequence[str] = ()) -> onnx.ModelProto:
    """The model an INT8 build compiles: a model with Q/DQ nodes as it is (explicit
    quantization; a calibrator is then not used, with a warning, as TensorRT does); else the
    model calibrated with `calibrator` and quantized (`quantize`), nodes in `exclude` (layers
    with a precision of their own) left in floating point, reading their inputs unrounded. The
    calibrator's cache, when it matches the network, replaces running batches; a calibration
    writes it."""
    if any(n.op_type in QDQ_OPS for n in model.graph.node):
        if calibrator is not None:
            warnings.warn("the model has Q/DQ nodes (explicit quantization): the INT8 "
                          "calibrator is not used", stacklevel=2)
        return model
    if calibrator is None:
        raise EmberError("BuilderFlag.INT8: the model has no Q/DQ nodes and the config no "
                         "int8_calibrator: give a calibrator (config.int8_calibrator; ember "
                         "build --calib-data / --calib-cache), or a model quantized with Q/DQ")
    algorithm = _check_calibrator(calibrator)
    _check_onnxruntime()
    specs = _input_specs(model, profiles)
    batch = int(calibrator.get_batch_size())
    for name, (shape, _) in specs.items():
        if batch != 1 and (not shape or shape[0] != batch):
            raise EmberError(f"{type(calibrator).__name__}.get_batch_size() is {batch}, but "
                             f"input '{name}' is {list(shape)}: batches take the input's shape "
                             "(explicit batch), so give 1 or its first dim")
    ops = _op_types()
    foreign = sorted({f"{n.domain}::{n.op_type}" for n in model.graph.node
                      if n.domain not in ("", "ai.onnx")})
    if foreign:  # calibration runs the float model in onnxruntime, which lacks them
        raise EmberError(f"INT8 calibration runs the model in onnxruntime, which cannot run "
                         f"{', '.join(foreign)} (plugins / custom ops): give a model "
                         "quantized with Q/DQ nodes instead")
    model = fold_constant_nodes(model)
    with tempfile.TemporaryDirectory(prefix="ember-calib-") as tmp:
        work = Path(tmp)
        path = work / "model.onnx"
        # (saving with external data moves the weights out of the proto it saves: a copy; in
        # the IR version the installed onnxruntime reads)
        copy = onnx.ModelProto.FromString(model.SerializeToString())
        copy.ir_version = min(copy.ir_version, max_ir_version())
        onnx.save_model(copy, path, save_as_external_data=True, location="model.data")
        needed, tensors = _calibrated_tensors(path, ops)
        scales = _cached(calibrator, algorithm, needed, tensors)
        if scales is None:
            scales = _calibrate(path, calibrator, algorithm, specs, ops, work)
            calibrator.write_calibration_cache(memoryview(cache_text(algorithm, scales)))
        return quantize(model, {n: scales[n] for n in sorted(needed) if n in scales}, path,
                        exclude)




def fold_constant_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with each node of constant inputs replaced by its value (onnx's reference
    evaluator), so a weight reached through Identity/Transpose/Einsum (the network API's and
    exporters' way) is an initializer that the quantizer quantizes as a weight (per channel),
    not an activation. Nodes left keep their names."""
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    constant = {t.name for t in graph.initializer}
    opsets = {o.domain or "": o.version for o in model.opset_import}
    folded: dict[str, np.ndarray] = {}
    values: dict[str, np.ndarray] = {}
    kept = []
    for node in graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type in NOT_FOLDED \
                or node.attribute and any(a.type == onnx.AttributeProto.GRAPH
                                          for a in node.attribute) \
                or not all(not i or i in constant for i in node.input):
            kept.append(node)
            continue
        inputs = []
        for name in node.input:
            if name and name not in values:
                values[name] = folded.get(name) if name in folded else numpy_helper.to_array(
                    next(t for t in graph.initializer if t.name == name))
            inputs.append(values.get(name) if name else None)
        outputs = ReferenceEvaluator(node, opsets={"": opsets.get("", 17)}).run(
            None, dict(zip(node.input, inputs, strict=True)))
        for name, value in zip(node.output, outputs, strict=True):
            folded[name] = values[name] = np.asarray(value)
            constant.add(name)
    if not folded:
        return model
    used = {i for n in kept for i in n.input} | {o.name for o in graph.output}
    out = onnx.ModelProto.FromString(model.SerializeToString())
    del out.graph.node[:]
    out.graph.node.extend(kept)
    initializers = [t for t in out.graph.initializer if t.name in used]
    initializers += [numpy_helper.from_array(v, k) for k, v in folded.items() if k in used]
    del out.graph.initializer[:]
    out.graph.initializer.extend(initializers)
    return out


def _cached(calibrator: IInt8Calibrator, algorithm: CalibrationAlgoType, needed: set[str],
            tensors: set[str]) -> dict[str, np.float32] | None:
    """The scales of the calibrator's cache, or None (no cache, or one that does not match the
    network: reported, then calibration runs)."""
    cache = calibrator.read_calibration_cache()
    if cache is None or (isinstance(cache, bytes | bytearray | memoryview) and not len(cache)):
        return None
    if not isinstance(cache, bytes | bytearray | memoryview):
        raise EmberError(f"{type(calibrator).__name__}.read_calibration_cache() must return "
                         f"bytes or None, not {type(cache).__name__}")
    try:
        scales = parse_cache(cache, algorithm)
        unknown = sorted(set(scales) - tensors)
        missing = sorted(needed - set(scales))
        if unknown or missing:
            raise EmberError("it does not match the network: " + "; ".join(
                f"{what} {', '.join(map(repr, names[:5]))}"
                + (f" and {len(names) - 5} more" if len(names) > 5 else "")
                for what, names in (("the network has no tensor", unknown),
                                    ("it has no scale for", missing)) if names))
    except EmberError as e:
        warnings.warn(f"calibration cache ignored: {e}; calibrating", stacklevel=3)
        return None
    return scales
