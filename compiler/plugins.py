"""Plugins, TensorRT-shaped: `ember.plugin` mirrors TensorRT 10's `tensorrt.plugin` decorators
(its classic registry, `get_plugin_registry()` with creators and `PluginField`s, is
compiler/plugins_registry.py).

    @ember.plugin.register("my.domain::ScaledSoftplus")      # shape/type function
    def desc(x: TensorDesc, alpha: float) -> TensorDesc: return x.like()

    @ember.plugin.aot_impl("my.domain::ScaledSoftplus")      # its CUDA C kernel
    def kernel(x, alpha, outputs, tactic): return "name", cuda_source, KernelLaunchParams(...)

    @ember.plugin.impl("my.domain::ScaledSoftplus")          # its numpy reference
    def ref(x, alpha, outputs, stream): outputs[0][...] = ...

The ONNX parser imports a node ember does not know as the plugin of its domain and op type
(`plugin_version` / `plugin_namespace` attributes as TensorRT reads them), the network API adds
one with `add_plugin_v3` / `add_plugin`. The kernel is compiled by NVRTC and packed into the
plan; the reference is what the CPU executor runs, registered by the process that loads the
plan (`ember.runtime.plugins.impl`: the runtime alone). Registrations live in
`ember.runtime.plugins`.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ember.errors import CompileError, PluginError, UnsupportedError
from ember.runtime import plugins as _registry
from ember.runtime.plugins import DEFAULT_VERSION, REQUIRED, label, split_name
from ember.runtime.trt_types import DataType

# -- what the plugin's functions see -------------------------------------------------------------


class SymbolicDim(str):
    """A dim known only at run time ("N": a profile's symbol). A shape function may pass it on
    (`like()`, building a shape from it); arithmetic on it is not supported."""

    def _no(self, *_: Any) -> Any:
        raise PluginError(f"symbolic dim '{self}': arithmetic on run-time dims in a shape "
                          "function is not supported (copy the dim, or give static shapes)")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __floordiv__ = _no


class Shape(list):
    """A tensor's dims (ints, or `SymbolicDim`s): TensorRT's ShapeExpr as ember has it (a
    shape function may change an output's dims in place)."""

    def numel(self) -> Any:
        out: Any = 1
        for d in self:
            out = out * d
        return out

    @property
    def ndim(self) -> int:
        return len(self)


class TensorDesc:
    """A plugin input's or output's shape and dtype, as its shape function and kernel generator
    see it (TensorRT's `tensorrt.plugin.TensorDesc`). `shape` / `shape_expr`: the dims;
    `dtype`: a TensorRT DataType (`trt.float32`); the format is always LINEAR (row-major)."""

    __slots__ = ("_shape", "dtype")

    def __init__(self, shape: Iterable[Any] = (), dtype: Any = DataType.FLOAT) -> None:
        self.shape_expr = shape
        self.dtype = _data_type(dtype)

    @property
    def shape_expr(self) -> Shape:
        return self._shape

    @shape_expr.setter
    def shape_expr(self, value: Iterable[Any]) -> None:
        from ember.codegen.symbolic import is_sym

        # a kernel generator of a plan with dynamic shapes sees its run-time sizes as C
        # expressions over the kernel's size arguments (codegen's Sym: arithmetic works)
        self._shape = Shape(SymbolicDim(d) if isinstance(d, str) else d if is_sym(d)
                            else int(d) for d in value)

    shape = shape_expr

    @property
    def ndim(self) -> int:
        return len(self._shape)

    @property
    def format(self) -> str:
        return "LINEAR"

    def numel(self) -> Any:
        return self._shape.numel()

    def like(self) -> TensorDesc:
        """An output of this shape and dtype."""
        return TensorDesc(self._shape, self.dtype)

    def aliased(self) -> TensorDesc:
        raise UnsupportedError("TensorDesc.aliased: in-place plugins are not supported "
                               "(return like() and write a new output)")

    def __repr__(self) -> str:
        return f"TensorDesc(shape={tuple(self._shape)}, dtype={self.dtype!r})"


def from_shape_expr(shape: Iterable[Any], dtype: Any = DataType.FLOAT) -> TensorDesc:
    return TensorDesc(shape, dtype)


def _data_type(dtype: Any) -> DataType:
    if isinstance(dtype, DataType):
        return dtype
    return DataType.from_numpy(np.dtype(dtype))


@dataclass
class KernelLaunchParams:
    """A plugin kernel's launch geometry (TensorRT's `tensorrt.plugin.KernelLaunchParams`)."""

    grid_x: int = 1
    grid_y: int = 1
    grid_z: int = 1
    block_x: int = 1
    block_y: int = 1
    block_z: int = 1
    shared_mem: int = 0


def cdiv(a: Any, b: int) -> Any:
    """Ceiling division (ints, or the run-time sizes the kernel generator sees)."""
    from ember.codegen.symbolic import cdiv as sym_cdiv

    return sym_cdiv(a, b)


_TYPE_CODES = {"FP32": "float32", "FP16": "float16", "BF16": "bfloat16", "INT8": "int8",
               "INT32": "int32", "INT64": "int64", "BOOL": "bool", "UINT8": "uint8"}


@dataclass
class AutoTuneCombination:
    """The dtypes (and formats) a plugin supports (TensorRT's `AutoTuneCombination`):
    `"FP32|FP16, FP32|FP16"` gives the choices for each input then each output; `"LINEAR"` is
    the only format ember's plugins read and write; one tactic."""

    io_types: str = ""
    layouts: str = "LINEAR"
    tactics_list: list[int] = field(default_factory=list)

    def tactics(self, values: Sequence[int]) -> None:
        self.tactics_list = list(values)

    def pos(self, *_: Any) -> None:
        raise UnsupportedError("AutoTuneCombination.pos: give the dtypes in the constructor "
                               "string ('FP32|FP16, FP32|FP16')")

    def choices(self, count: int, what: str) -> list[list[str]]:
        """Per position (inputs then outputs), the dtype names it allows."""
        if any(x.strip().upper() != "LINEAR" for x in self.layouts.replace("|", ",").split(",")
               if x.strip()):
            raise UnsupportedError(f"{what}: format(s) '{self.layouts}': ember's plugins read "
                                   "and write LINEAR (row-major) tensors only")
        if len(self.tactics_list) > 1:
            raise UnsupportedError(f"{what}: {len(self.tactics_list)} tactics: ember's plugins "
                                   "have one kernel (tactic 0) for now")
        parts = [p.strip() for p in self.io_types.split(",")]
        if len(parts) != count:
            raise PluginError(f"{what}: '{self.io_types}' gives {len(parts)} position(s) for "
                              f"{count} inputs and outputs")
        out = []
        for p in parts:
            names = []
            for code in p.split("|"):
                code = code.strip().upper()
                if code not in _TYPE_CODES:
                    raise PluginError(f"{what}: unknown type '{code}' (types: "
                                      f"{', '.join(_TYPE_CODES)})")
                names.append(_TYPE_CODES[code])
            out.append(names)
        return out


# -- registration --------------------------------------------------------------------------------


def _is_desc(annotation: Any) -> bool:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    return annotation is TensorDesc or str(text).split(".")[-1] == "TensorDesc"


@dataclass
class _Signature:
    inputs: list[str]
    attributes: dict[str, Any]  # name -> default (REQUIRED)
    kinds: dict[str, str]  # name -> its kind (`_kind`)


def _kind(annotation: Any) -> str:
    """An attribute's kind from its annotation (a string under `from __future__ import
    annotations`): "array[<dtype>]" (a numpy array, `npt.NDArray[np.int32]`), "list", "bool",
    "int", "float", "str", or "any" (the value as the model gives it)."""
    if annotation is inspect.Parameter.empty:
        return "any"
    if annotation in (bool, int, float, str):
        return annotation.__name__
    text = annotation if isinstance(annotation, str) else repr(annotation)
    if "NDArray" in text or "ndarray" in text:
        m = re.search(r"(?:np|numpy)\.(\w+)\]*$", text.replace(" ", ""))
        return f"array[{np.dtype(m[1]).name}]" if m and _is_dtype(m[1]) else "array[]"
    if re.match(r"(typing\.|collections\.abc\.)?(list|List|tuple|Tuple|Sequence)\b", text):
        return "list"
    return text if text in ("bool", "int", "float", "str") else "any"


def _is_dtype(name: str) -> bool:
    try:
        np.dtype(name)
    except TypeError:
        return False
    return True


def _signature(fn: Callable, qualified: str) -> _Signature:
    inputs, attributes, kinds = [], {}, {}
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise PluginError(f"plugin '{qualified}': the shape function's parameters must be "
                              f"named (no *{p.name} / **{p.name})")
        if _is_desc(p.annotation):
            if attributes:
                raise PluginError(f"plugin '{qualified}': tensor input '{p.name}' follows an "
                                  "attribute (inputs come first)")
            inputs.append(p.name)
        else:
            attributes[p.name] = REQUIRED if p.default is p.empty else p.default
            kinds[p.name] = _kind(p.annotation)
    return _Signature(inputs, attributes, kinds)


_SIGNATURES: dict[tuple[str, str], _Signature] = {}
_AUTOTUNE: dict[tuple[str, str], Callable] = {}


def _descs(shapes: Sequence[Sequence[Any]], dtypes: Sequence[str]) -> list[TensorDesc]:
    return [TensorDesc(s, d) for s, d in zip(shapes, dtypes, strict=True)]


def _dtype_name(d: Any) -> str:
    return (d.dtype if isinstance(d, DataType) else np.dtype(d)).name


def register(qualified: str, version: str = DEFAULT_VERSION) -> Callable[[Callable], Callable]:
    """Decorator registering a plugin's shape/type function: its first parameters, annotated
    `TensorDesc`, are the inputs; the rest are the attributes (annotated int, float, str, bool,
    list or a numpy array; a default makes one optional); it returns the outputs' TensorDescs
    (one, or a tuple)."""
    split_name(qualified)

    def decorate(fn: Callable) -> Callable:
        sig = _signature(fn, qualified)
        found = _registry.definition(qualified, version, create=True)
        assert found is not None

        def describe(shapes: Sequence[Sequence[Any]], dtypes: Sequence[str],
                     attrs: Mapping[str, Any]) -> list[tuple[tuple, str]]:
            if len(shapes) != len(sig.inputs):
                raise PluginError(f"{found.label} takes {len(sig.inputs)} input(s) "
                                  f"({', '.join(sig.inputs)}), got {len(shapes)}")
            out = fn(*_descs(shapes, dtypes), **attrs)
            outs = list(out) if isinstance(out, tuple | list) else [out]
            if not outs or not all(isinstance(o, TensorDesc) for o in outs):
                raise PluginError(f"{found.label}: the shape function must return TensorDesc(s),"
                                  f" got {out!r}")
            return [(tuple(str(d) if isinstance(d, str) else int(d) for d in o.shape),
                     _dtype_name(o.dtype)) for o in outs]

        found.describe = describe
        found.attributes = dict(sig.attributes)
        _SIGNATURES[(found.qualified, found.version)] = sig
        return fn
    return decorate


def impl(qualified: str, version: str = DEFAULT_VERSION) -> Callable[[Callable], Callable]:
    """Decorator registering a plugin's numpy reference (see `ember.runtime.plugins.impl`;
    the loading process needs only that one)."""
    return _registry.impl(qualified, version)


def aot_impl(qualified: str, version: str = DEFAULT_VERSION) -> Callable[[Callable], Callable]:
    """Decorator registering a plugin's CUDA kernel generator (TensorRT's `aot_impl`): called
    with the inputs' TensorDescs, the attributes, `outputs` (the outputs' TensorDescs) and
    `tactic`, it returns (kernel name, CUDA C source, KernelLaunchParams) — ember compiles the
    source with NVRTC (CUBIN + PTX in the plan). The kernel is `extern "C" __global__`, takes the
    inputs' then the outputs' pointers (then an `int` per symbolic size, see
    codegen/templates/plugin.py); constants such as attribute values go into the source."""
    def decorate(fn: Callable) -> Callable:
        found = _registry.definition(qualified, version, create=True)
        assert found is not None

        def emit(in_shapes: Sequence, in_dtypes: Sequence[str], out_shapes: Sequence,
                 out_dtypes: Sequence[str], attrs: Mapping[str, Any]
                 ) -> tuple[str, str, tuple, tuple, int]:
            kwargs: dict[str, Any] = dict(attrs)
            params = inspect.signature(fn).parameters
            if "outputs" in params:
                kwargs["outputs"] = tuple(_descs(out_shapes, out_dtypes))
            if "tactic" in params:
                kwargs["tactic"] = 0
            result = fn(*_descs(in_shapes, in_dtypes), **kwargs)
            if not isinstance(result, tuple) or len(result) not in (3, 4):
                raise PluginError(f"{found.label}: aot_impl must return (kernel name, CUDA C "
                                  "source, KernelLaunchParams)")
            name, source, launch = result[:3]
            if len(result) == 4 and result[3]:
                raise UnsupportedError(f"{found.label}: extra kernel arguments are not "
                                       "supported: write constants into the source")
            name = name.decode() if isinstance(name, bytes) else str(name)
            source = source.decode() if isinstance(source, bytes) else str(source)
            if ".target" in source and "__global__" not in source:
                raise UnsupportedError(f"{found.label}: aot_impl returned PTX; ember compiles "
                                       "CUDA C source (NVRTC) and packs CUBIN and PTX itself")
            if not isinstance(launch, KernelLaunchParams):
                raise PluginError(f"{found.label}: the launch must be KernelLaunchParams")
            return (name, source, (launch.grid_x, launch.grid_y, launch.grid_z),
                    (launch.block_x, launch.block_y, launch.block_z), launch.shared_mem)

        found.emit = emit
        return fn
    return decorate


def autotune(qualified: str, version: str = DEFAULT_VERSION) -> Callable[[Callable], Callable]:
    """Decorator registering the dtypes a plugin supports (TensorRT's `autotune`): called with
    the inputs' TensorDescs and `outputs`, it returns AutoTuneCombinations. A plugin instance
    whose dtypes none allows is refused at build time, naming the plugin."""
    def decorate(fn: Callable) -> Callable:
        found = _registry.definition(qualified, version, create=True)
        assert found is not None
        _AUTOTUNE[(found.qualified, found.version)] = fn
        found.supports = lambda shapes, dtypes, outs: _allowed(found, shapes, dtypes, outs)[0]
        return fn
    return decorate


def _allowed(found: _registry.PluginDefinition, in_shapes: Sequence, in_dtypes: Sequence[str],
             outs: Sequence[tuple[tuple, str]]) -> tuple[bool, list[AutoTuneCombination]]:
    """Whether the plugin's autotune function allows these dtypes (True without one), and
    its combinations."""
    fn = _AUTOTUNE.get((found.qualified, found.version))
    if fn is None:
        return True, []
    combos = fn(*_descs(in_shapes, in_dtypes),
                outputs=tuple(TensorDesc(s, d) for s, d in outs))
    have = [*in_dtypes, *(d for _, d in outs)]
    for combo in combos:
        choices = combo.choices(len(have), found.label)
        if all(h in c for h, c in zip(have, choices, strict=True)):
            return True, combos
    return False, combos


def check_dtypes(found: _registry.PluginDefinition, in_shapes: Sequence, in_dtypes: Sequence[str],
                 outs: Sequence[tuple[tuple, str]]) -> None:
    """PluginError unless the plugin's autotune function (if any) allows these dtypes."""
    ok, combos = _allowed(found, in_shapes, in_dtypes, outs)
    if not ok:
        have = [*in_dtypes, *(d for _, d in outs)]
        raise PluginError(f"{found.label}: dtypes ({', '.join(have)}) are not among those it "
                          f"supports ({'; '.join(c.io_types for c in combos)})")


# -- attributes ----------------------------------------------------------------------------------


def plugin_attributes(qualified: str, version: str, given: Mapping[str, Any], where: str
                      ) -> tuple[dict[str, Any], dict[str, str]]:
    """The attribute values of one instance, checked against the shape function's parameters
    (unknown ones, missing required ones: PluginError naming them) and converted to their
    annotated kinds: (attrs as plain data, `arrays`: the numpy-array ones' dtypes)."""
    found = _registry.definition(qualified, version)
    sig = _SIGNATURES.get((qualified, str(version)))
    if found is None or found.describe is None or sig is None:
        raise PluginError(f"{where}: {label(qualified, version)} is not registered "
                          f"(ember.plugin.register(\"{qualified}\"))")
    unknown = [k for k in given if k not in sig.attributes]
    if unknown:
        raise PluginError(f"{where}: {found.label} has no attribute(s) {', '.join(unknown)} "
                          f"(its attributes: {', '.join(sig.attributes) or 'none'})")
    missing = [k for k, d in sig.attributes.items() if d is REQUIRED and k not in given]
    if missing:
        raise PluginError(f"{where}: {found.label} needs attribute(s) {', '.join(missing)}")
    attrs: dict[str, Any] = {}
    arrays: dict[str, str] = {}
    for key, default in sig.attributes.items():
        value = given.get(key, default)
        kind = sig.kinds[key]
        try:
            value = _convert(value, kind)
        except (TypeError, ValueError) as e:
            raise PluginError(f"{where}: {found.label} attribute '{key}' = {value!r} is not "
                              f"{kind}: {e}") from None
        if isinstance(value, np.ndarray):
            arrays[key] = value.dtype.name
            value = value.tolist()
        attrs[key] = value
    return attrs, arrays


def _convert(value: Any, kind: str) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if kind == "int":
        return int(np.asarray(value).reshape(()).item()) if np.ndim(value) else int(value)
    if kind == "float":
        return float(np.asarray(value).reshape(()).item()) if np.ndim(value) else float(value)
    if kind == "bool":
        return bool(np.asarray(value).reshape(()).item()) if np.ndim(value) else bool(value)
    if kind == "str":
        if isinstance(value, np.ndarray):
            return bytes(value.astype(np.uint8)).decode().rstrip("\0")
        return str(value)
    if kind == "list":
        return np.asarray(value).reshape(-1).tolist()
    if kind.startswith("array["):
        dtype = kind[len("array["):-1]
        return np.asarray(value, dtype=np.dtype(dtype)) if dtype else np.asarray(value)
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, tuple):
        return list(value)
    if not isinstance(value, int | float | str | bool | list):
        raise TypeError(f"an attribute of type {type(value).__name__}")
    return value


def plugin_outputs(qualified: str, version: str, in_shapes: Sequence, in_dtypes: Sequence[str],
                   attrs: Mapping[str, Any], arrays: Mapping[str, str], where: str
                   ) -> list[tuple[tuple, str]]:
    """The outputs' (shape, dtype) by the plugin's shape function, checked against its
    supported dtypes; errors name `where` and the plugin."""
    found = _registry.definition(qualified, version)
    assert found is not None and found.describe is not None
    values = _registry.attribute_values({"attrs": attrs, "arrays": arrays})
    try:
        outs = found.describe(in_shapes, in_dtypes, values)
    except (PluginError, UnsupportedError) as e:
        raise PluginError(f"{where}: {e}") from None
    except Exception as e:
        raise PluginError(f"{where}: {found.label}: its shape function failed: "
                          f"{type(e).__name__}: {e}") from e
    check_dtypes(found, in_shapes, in_dtypes, outs)
    return outs


def load_plugin_files(paths: Sequence[str], flag: str = "--plugins") -> None:
    """Run Python files that register plugins (the CLI's `--plugins`, `flag` in errors): each
    as a script of its own, its errors PluginError naming the file. A shared library (TensorRT's
    plugin form) is refused: ember's plugins are Python (ember.plugin)."""
    import runpy
    from pathlib import Path

    for path in paths:
        if Path(path).suffix.lower() in (".so", ".dll", ".dylib"):
            raise PluginError(f"{flag} {path}: ember loads plugins from Python files that "
                              "register them with ember.plugin's decorators, not from shared "
                              "libraries (TensorRT's C++ plugins do not port)")
        if not Path(path).is_file():
            raise PluginError(f"{flag}: no such file: {path}")
        try:
            runpy.run_path(str(path), run_name="__ember_plugins__")
        except PluginError:
            raise
        except Exception as e:
            raise PluginError(f"{flag} {path}: {type(e).__name__}: {e}") from e


# -- compiling a plugin's kernel alone -----------------------------------------------------------


def compile_plugin(qualified: str, inputs: Sequence[TensorDesc], attrs: Mapping[str, Any]
                   | None = None, *, version: str = DEFAULT_VERSION, arch: str = "sm_90"
                   ) -> Any:
    """Compile one instance's kernel with NVRTC (no GPU needed): the CompiledKernel; a
    CompileError naming the plugin, with NVRTC's log, where it does not compile."""
    from ember.codegen.emit_cuda import emit_step
    from ember.codegen.nvrtc import compile_cuda

    where = f"compiling {label(qualified, version)}"
    values, arrays = plugin_attributes(qualified, version, dict(attrs or {}), where)
    shapes = [tuple(d.shape) for d in inputs]
    dtypes = [_dtype_name(d.dtype) for d in inputs]
    outs = plugin_outputs(qualified, version, shapes, dtypes, values, arrays, where)
    params = {"plugin": qualified, "version": version, "attrs": values, "arrays": arrays,
              "in_shapes": [list(s) for s in shapes], "in_dtypes": dtypes,
              "out_shapes": [list(s) for s, _ in outs], "out_dtypes": [d for _, d in outs]}
    name, spec = emit_step({"template": "plugin", "name": qualified, "params": params})
    try:
        return compile_cuda(spec.source, name=name, arch=arch)
    except CompileError as e:
        raise plugin_compile_error(e, {name: label(qualified, version)}) from None


def plugin_compile_error(e: CompileError, plugin_kernels: Mapping[str, str]) -> CompileError:
    """`e` restated with the plugins whose kernels failed named first (kernel name -> label)."""
    failed = [lbl for kernel, lbl in plugin_kernels.items() if f"'{kernel}'" in str(e)]
    if not failed:
        return e
    return CompileError(f"the CUDA kernel of {', '.join(failed)} failed to compile:\n{e}",
                        kernel=e.kernel, log=e.log)


# -- `ember.plugin.op.<namespace>.<name>(inputs..., attrs...)` for network.add_plugin ------------


@dataclass
class PluginCall:
    """One call of a plugin for `network.add_plugin` (TensorRT's `trtp.op.ns.name(...)`)."""

    qualified: str
    version: str
    inputs: list[Any]
    attrs: dict[str, Any]


class _OpNamespace:
    def __init__(self, prefix: str) -> None:
        self._prefix = prefix

    def __getattr__(self, part: str) -> Any:
        if part.startswith("__"):
            raise AttributeError(part)
        if self._prefix and _registry.versions(f"{self._prefix}::{part}"):
            qualified = f"{self._prefix}::{part}"

            def call(*inputs: Any, version: str = DEFAULT_VERSION, **attrs: Any) -> PluginCall:
                return PluginCall(qualified, version, list(inputs), attrs)
            return call
        return _OpNamespace(f"{self._prefix}.{part}" if self._prefix else part)


op = _OpNamespace("")

__all__ = ["AutoTuneCombination", "KernelLaunchParams", "PluginCall", "Shape", "SymbolicDim",
           "TensorDesc", "aot_impl", "autotune", "cdiv", "compile_plugin", "from_shape_expr",
           "impl", "load_plugin_files", "op", "plugin_attributes", "plugin_outputs", "register"]
