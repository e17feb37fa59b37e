"""The plan manifest's one typed schema: frozen dataclasses that the compiler's packer
(`compiler/pack.py`) builds and writes with `Manifest.to_json()`, and the loader reads back with
`Manifest.from_json(data)`, which validates (a malformed field is a PlanError naming it).

The JSON form is the plan format's (runtime/plan.py, formats 1-2): `to_json` emits keys in
the order the builder always wrote them, so `from_json(m).to_json() == m` for every plan ember
builds. The buffer, I/O, step, symbol and profile checks are `runtime.manifest`'s; this module
adds the CUDA records (target, kernels, launches), the autotuner's counts, and refuses keys it
does not know. A step's `params` stay the template's free-form JSON (non-finite floats as
{"float": "inf"}; `runtime.manifest.decode` turns them into Python data).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ember.errors import PlanError
from ember.runtime.manifest import symbols_of, validate
from ember.runtime.symbolic import check_expr
from ember.runtime.tensor_maps import Im2colMap, TensorMap

# the plan container's section table (runtime/plan.py): read back with the manifest, not part of it
_CONTAINER_KEYS = ("sections",)


def _is_int(value: Any, lo: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= lo


def _int(value: Any, what: str, lo: int = 0) -> int:
    if not _is_int(value, lo):
        raise PlanError(f"manifest: {what} must be an integer ≥ {lo}, not {value!r}")
    return value


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise PlanError(f"manifest: {what} must be a string, not {value!r}")
    return value


def _ints(value: Any, what: str, lo: int = 0) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > 64:
        raise PlanError(f"manifest: {what} must be a list of integers, not {value!r}")
    return tuple(_int(v, f"an entry of {what}", lo) for v in value)


def _object(value: Any, what: str, known: tuple[str, ...], required: tuple[str, ...] = ()
            ) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PlanError(f"manifest: {what} must be an object, not {value!r}")
    unknown = [k for k in value if k not in known]
    if unknown:
        raise PlanError(f"manifest: {what} has unknown key(s) {unknown}")
    missing = [k for k in required if k not in value]
    if missing:
        raise PlanError(f"manifest: {what} lacks {missing}")
    return value


def _plain(value: Any) -> Any:
    """A fresh copy of JSON data: what `to_json` hands out never aliases the schema's own."""
    return copy.deepcopy(value)


COMPATIBLE = "ampere+"  # the one hardware-compatibility level a target may name


@dataclass(frozen=True)
class Target:
    """What the plan's code runs on: {"device": "any"} (CPU only) or a CUDA arch and the NVRTC
    version that compiled its kernels; `compatibility` "ampere+" (TensorRT's hardware
    compatibility level AMPERE_PLUS): the code is sm_80's, run on any GPU from sm_80 up (by
    JIT-compiling its PTX on another arch)."""

    device: str
    arch: str | None = None
    nvrtc: tuple[int, int] | None = None
    compatibility: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"device": self.device}
        if self.arch is not None:
            out["arch"] = self.arch
        if self.nvrtc is not None:
            out["nvrtc"] = list(self.nvrtc)
        if self.compatibility is not None:
            out["compatibility"] = self.compatibility
        return out

    @staticmethod
    def from_json(data: Any) -> Target:
        d = _object(data, "'target'", ("device", "arch", "nvrtc", "compatibility"), ("device",))
        device = _str(d["device"], "target 'device'")
        if device not in ("any", "cuda"):
            raise PlanError(f"manifest: target 'device' must be 'any' or 'cuda', not {device!r}")
        arch = _str(d["arch"], "target 'arch'") if "arch" in d else None
        nvrtc = None
        if "nvrtc" in d:
            nv = _ints(d["nvrtc"], "target 'nvrtc'")
            if len(nv) != 2:
                raise PlanError(f"manifest: target 'nvrtc' must be [major, minor], not {nv!r}")
            nvrtc = (nv[0], nv[1])
        if device == "cuda" and arch is None:
            raise PlanError("manifest: a 'cuda' target has no 'arch'")
        compatibility = d.get("compatibility")
        if compatibility is not None and (compatibility != COMPATIBLE or device != "cuda"):
            raise PlanError(f"manifest: target 'compatibility' must be {COMPATIBLE!r} (of a "
                            f"'cuda' target), not {compatibility!r}")
        return Target(device, arch, nvrtc, compatibility)


@dataclass(frozen=True)
class TensorInfo:
    """A graph input or output: its name, dtype, shape (ints and symbol monomials, in its
    format's byte order), 4-D format ("" for other ranks) and the buffer bound to it."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]
    buffer: int
    format: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape),
                "format": self.format, "buffer": self.buffer}

    @staticmethod
    def from_json(data: Mapping[str, Any], what: str) -> TensorInfo:
        d = _object(data, what, ("name", "dtype", "shape", "format", "buffer"))
        return TensorInfo(d["name"], d["dtype"], tuple(d["shape"]), d["buffer"],
                          d.get("format", ""))


@dataclass(frozen=True)
class Buffer:
    """A tensor's storage: a bound input, a range of the weights section or of the arena, or a
    view of an earlier buffer. `format` is None where it goes without saying (NCHW, or not 4-D)."""

    id: int
    kind: str                          # runtime.manifest.BUFFER_KINDS
    dtype: str
    shape: tuple[int | str, ...]
    format: str | None = None
    offset: int | None = None          # weight and arena buffers
    base: int | None = None            # views
    name: str | None = None            # inputs

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "dtype": self.dtype,
                               "shape": list(self.shape)}
        for key in ("format", "offset", "base", "name"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @staticmethod
    def from_json(data: Mapping[str, Any], what: str) -> Buffer:
        d = _object(data, what, ("id", "kind", "dtype", "shape", "format", "offset", "base",
                                 "name"))
        if "format" in d:
            _str(d["format"], f"{what}'s format")
        if d["kind"] in ("input", "view") and "offset" in d:
            raise PlanError(f"manifest: {what} ({d['kind']}) has an offset")
        if d["kind"] != "view" and "base" in d:
            raise PlanError(f"manifest: {what} ({d['kind']}) has a base")
        if "name" in d:
            _str(d["name"], f"{what}'s name")
        return Buffer(d["id"], d["kind"], d["dtype"], tuple(d["shape"]), d.get("format"),
                      d.get("offset"), d.get("base"), d.get("name"))


@dataclass(frozen=True)
class CudaLaunch:
    """A step's CUDA kernel launch: the kernel's name (an entry of `Manifest.kernels`), grid,
    block, dynamic shared bytes, the symbols passed after its pointers (`sizes`), split-K scratch
    (`counters` and `workspace` bytes), the tensor maps the runtime encodes over its operands
    (`tmaps`, ember.runtime.tensor_maps), whether the kernel may launch programmatically
    (`pdl`: it waits for the kernel before it), and the kernels tuned for small symbol values
    (`variants`, each with `when`: symbol -> the largest value it runs for)."""

    kernel: str
    grid: tuple[Any, ...]             # ints, or expressions of the symbols (runtime.symbolic)
    block: tuple[int, ...]
    shared: int
    sizes: tuple[str, ...] | None = None
    counters: int | None = None
    workspace: int | None = None
    variants: tuple[CudaLaunch, ...] | None = None
    when: dict[str, int] | None = None  # a variant's
    # passed after the pointers and workspace
    tmaps: tuple[TensorMap | Im2colMap, ...] | None = None
    # the kernel waits for the one before it (griddepcontrol): it may launch programmatically
    pdl: bool = False

    _KEYS = ("when", "kernel", "grid", "block", "shared", "sizes", "counters", "workspace",
             "tmaps", "pdl", "variants")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.when is not None:
            out["when"] = dict(self.when)
        out.update(kernel=self.kernel, grid=_plain(list(self.grid)), block=list(self.block),
                   shared=self.shared)
        if self.sizes is not None:
            out["sizes"] = list(self.sizes)
        if self.workspace is not None:
            out["counters"] = self.counters
            out["workspace"] = self.workspace
        if self.tmaps is not None:
            out["tmaps"] = [t.to_json() for t in self.tmaps]
        if self.pdl:
            out["pdl"] = True
        if self.variants is not None:
            out["variants"] = [v.to_json() for v in self.variants]
        return out

    @staticmethod
    def from_json(data: Any, what: str, symbols: Mapping[str, Any],
                  variant: bool = False) -> CudaLaunch:
        keys = CudaLaunch._KEYS if variant else CudaLaunch._KEYS[1:]
        required = ("kernel", "grid", "block", "shared") + (("when",) if variant else ())
        d = _object(data, what, keys if not variant else keys[:-1], required)
        kernel = _str(d["kernel"], f"{what}'s kernel")
        if not isinstance(d["grid"], list):
            raise PlanError(f"manifest: {what}'s grid must be a list")
        for g in d["grid"]:
            check_expr(g, symbols, f"{what}'s grid")
        grid = tuple(_plain(d["grid"]))
        block = _ints(d["block"], f"{what}'s block", 1)
        if not 1 <= len(grid) <= 3 or not 1 <= len(block) <= 3:
            raise PlanError(f"manifest: {what}'s grid and block must have 1 to 3 dims")
        shared = _int(d["shared"], f"{what}'s shared")
        sizes = None
        if "sizes" in d:
            if not isinstance(d["sizes"], list):
                raise PlanError(f"manifest: {what}'s sizes must be a list of symbols")
            sizes = tuple(_str(s, f"a size of {what}") for s in d["sizes"])
            if any(z not in symbols for z in sizes):
                raise PlanError(f"manifest: {what}'s sizes {list(sizes)} name unknown symbols")
        if ("counters" in d) != ("workspace" in d):
            raise PlanError(f"manifest: {what} needs both 'counters' and 'workspace' or neither")
        counters = _int(d["counters"], f"{what}'s counters") if "counters" in d else None
        workspace = _int(d["workspace"], f"{what}'s workspace") if "workspace" in d else None
        tmaps = None
        if "tmaps" in d:
            if not isinstance(d["tmaps"], list) or not d["tmaps"]:
                raise PlanError(f"manifest: {what}'s tmaps must be a non-empty list")
            tmaps = tuple(TensorMap.from_json(t, f"tensor map #{k} of {what}")
                          for k, t in enumerate(d["tmaps"]))
        if "pdl" in d and d["pdl"] is not True:
            raise PlanError(f"manifest: {what}'s pdl must be true where present")
        variants = None
        if "variants" in d:
            if not isinstance(d["variants"], list):
                raise PlanError(f"manifest: {what}'s variants must be a list")
            variants = tuple(CudaLaunch.from_json(v, f"variant #{k} of {what}", symbols, True)
                             for k, v in enumerate(d["variants"]))
        when = None
        if variant:
            w = d["when"]
            if not isinstance(w, Mapping) or not all(
                    isinstance(k, str) and _is_int(v, 1) for k, v in w.items()):
                raise PlanError(f"manifest: {what}'s 'when' must map symbols to integers ≥ 1")
            when = dict(w)
        return CudaLaunch(kernel, grid, block, shared, sizes, counters, workspace, variants,
                          when, tmaps, "pdl" in d)


@dataclass(frozen=True)
class Step:
    """One kernel call: its template and parameters (the template's JSON), the buffers it reads
    and writes, the ONNX nodes it came from; in a CUDA plan either its launch (`cuda`) or
    `device` "cpu" with the reason in `fallback` (a step run on the host). `binds`: the
    data-dependent symbols it sets, each from a dim of one of its results (symbol -> [output,
    axis]), as the executors read it once the step has run."""

    name: str
    template: str
    params: dict[str, Any]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    origin: tuple[str, ...] = ()
    device: str | None = None
    fallback: str | None = None
    cuda: CudaLaunch | None = None
    binds: dict[str, tuple[int, int]] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "template": self.template,
                               "params": _plain(self.params), "inputs": list(self.inputs),
                               "outputs": list(self.outputs), "origin": list(self.origin)}
        if self.device is not None:
            out["device"] = self.device
        if self.fallback is not None:
            out["fallback"] = self.fallback
        if self.cuda is not None:
            out["cuda"] = self.cuda.to_json()
        if self.binds is not None:
            out["binds"] = {k: list(v) for k, v in self.binds.items()}
        return out

    @staticmethod
    def from_json(data: Mapping[str, Any], symbols: Mapping[str, Any]) -> Step:
        what = f"step {data['name']!r}"
        d = _object(data, what, ("name", "template", "params", "inputs", "outputs", "origin",
                                 "device", "fallback", "cuda", "binds"))
        device = d.get("device")
        if device is not None and device != "cpu":
            raise PlanError(f"manifest: {what}'s device must be 'cpu' where given, not "
                            f"{device!r}")
        fallback = _str(d["fallback"], f"{what}'s fallback") if "fallback" in d else None
        cuda = (CudaLaunch.from_json(d["cuda"], f"{what}'s cuda launch", symbols)
                if "cuda" in d else None)
        binds = ({k: (v[0], v[1]) for k, v in d["binds"].items()}  # checked by validate()
                 if "binds" in d else None)
        operands = len(d["inputs"]) + len(d["outputs"])
        for launch in (cuda, *((cuda.variants or ()) if cuda else ())):
            for t in (launch.tmaps or ()) if launch else ():
                if t.operand >= operands:
                    raise PlanError(f"manifest: {what}'s tensor map reads operand "
                                    f"{t.operand} of a step with {operands}")
        return Step(d["name"], d["template"], _plain(d["params"]), tuple(d["inputs"]),
                    tuple(d["outputs"]), tuple(d.get("origin", ())), device, fallback, cuda,
                    binds)


@dataclass(frozen=True)
class Kernel:
    """A compiled kernel: its name and its byte ranges in the "cubin", "ptx" and "cuda_source"
    sections."""

    name: str
    cubin_offset: int
    cubin_size: int
    ptx_offset: int
    ptx_size: int
    source_offset: int
    source_size: int

    _KEYS = ("name", "cubin_offset", "cubin_size", "ptx_offset", "ptx_size", "source_offset",
             "source_size")

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in Kernel._KEYS}

    @staticmethod
    def from_json(data: Any, what: str) -> Kernel:
        d = _object(data, what, Kernel._KEYS, Kernel._KEYS)
        name = _str(d["name"], f"{what}'s name")
        if not name.isidentifier():
            raise PlanError(f"manifest: {what} has a bad name {name!r}")
        return Kernel(name, *(_int(d[k], f"kernel {name}'s {k}") for k in Kernel._KEYS[1:]))


AUTOTUNE_COUNTS = ("steps", "timed", "cached", "failed", "rejected")


@dataclass(frozen=True)
class Manifest:
    """A plan's manifest (runtime/plan.py holds it with the sections it describes)."""

    ember_version: str | None
    target: Target | None
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    buffers: tuple[Buffer, ...]
    arena_bytes: int
    activation_bytes: int | None
    weights_bytes: int | None
    steps: tuple[Step, ...]
    # symbolic dims: name -> (min, opt, max); [dim, size] constraints; the optimization
    # profiles (input name -> (min, opt, max) shapes)
    symbols: dict[str, tuple[int, int, int]] | None = None
    constraints: tuple[tuple[int | str, int], ...] | None = None
    profiles: tuple[dict[str, list[list[int]]], ...] | None = None
    autotune: dict[str, int] | None = None  # the autotuner's counts (AUTOTUNE_COUNTS)
    kernels: tuple[Kernel, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        """The manifest as JSON data, keys in the plan format's order."""
        out: dict[str, Any] = {}
        if self.ember_version is not None:
            out["ember_version"] = self.ember_version
        if self.target is not None:
            out["target"] = self.target.to_json()
        out["inputs"] = [t.to_json() for t in self.inputs]
        out["outputs"] = [t.to_json() for t in self.outputs]
        out["buffers"] = [b.to_json() for b in self.buffers]
        out["arena_bytes"] = self.arena_bytes
        if self.activation_bytes is not None:
            out["activation_bytes"] = self.activation_bytes
        if self.weights_bytes is not None:
            out["weights_bytes"] = self.weights_bytes
        out["steps"] = [s.to_json() for s in self.steps]
        if self.symbols is not None:
            out["symbols"] = {k: list(v) for k, v in self.symbols.items()}
        if self.constraints is not None:
            out["constraints"] = [list(c) for c in self.constraints]
        if self.profiles is not None:
            out["profiles"] = _plain(list(self.profiles))
        if self.autotune is not None:
            out["autotune"] = dict(self.autotune)
        if self.kernels is not None:
            out["kernels"] = [k.to_json() for k in self.kernels]
        return out

    @staticmethod
    def from_json(data: Any, *, weights_bytes: int | None = None) -> Manifest:
        """Validate manifest JSON data and return its schema. `weights_bytes`: the size of the
        plan's weights section (weight buffers must lie inside it); by default the manifest's
        own "weights_bytes". A PlanError names the first malformed field."""
        return load(data, weights_bytes)[0]


_MANIFEST_KEYS = ("ember_version", "target", "inputs", "outputs", "buffers", "arena_bytes",
                  "activation_bytes", "weights_bytes", "steps", "symbols", "constraints",
                  "profiles", "autotune", "kernels")


def load(data: Any, weights_bytes: int | None = None
         ) -> tuple[Manifest, list[dict], list[dict]]:
    """`Manifest.from_json`, and what the executors read: the buffers and the steps with their
    params decoded (`runtime.manifest.validate`'s)."""
    d = _object(data, "the manifest", _MANIFEST_KEYS + _CONTAINER_KEYS)
    if weights_bytes is None:
        weights_bytes = d.get("weights_bytes", 0)
    buffers, steps = validate(d, _int(weights_bytes, "weights_bytes"))
    for key in ("activation_bytes", "weights_bytes"):
        if key in d:
            _int(d[key], key)
    version = _str(d["ember_version"], "ember_version") if "ember_version" in d else None
    target = Target.from_json(d["target"]) if "target" in d else None
    autotune = None
    if "autotune" in d:
        a = _object(d["autotune"], "'autotune'", AUTOTUNE_COUNTS)
        autotune = {k: _int(v, f"autotune's {k!r}") for k, v in a.items()}
    kernels = None
    if "kernels" in d:
        if not isinstance(d["kernels"], list):
            raise PlanError("manifest: 'kernels' must be a list")
        kernels = tuple(Kernel.from_json(k, f"kernel #{i}") for i, k in enumerate(d["kernels"]))
        names = [k.name for k in kernels]
        if len(set(names)) != len(names):
            raise PlanError("manifest: a kernel name appears twice in 'kernels'")
    schema_steps = tuple(Step.from_json(s, symbols_of(d)) for s in d["steps"])
    known = None if kernels is None else {k.name for k in kernels}
    for s in schema_steps:
        launches = [] if s.cuda is None else [s.cuda, *(s.cuda.variants or ())]
        for launch in launches:
            if known is None or launch.kernel not in known:
                raise PlanError(f"manifest: step {s.name!r} launches kernel "
                                f"{launch.kernel!r}, which 'kernels' does not list")
    symbols = None
    if "symbols" in d:
        symbols = {k: (v[0], v[1], v[2]) for k, v in d["symbols"].items()}
    manifest = Manifest(
        ember_version=version, target=target,
        inputs=tuple(TensorInfo.from_json(t, "an entry of 'inputs'") for t in d["inputs"]),
        outputs=tuple(TensorInfo.from_json(t, "an entry of 'outputs'") for t in d["outputs"]),
        buffers=tuple(Buffer.from_json(b, f"buffer #{i}") for i, b in enumerate(d["buffers"])),
        arena_bytes=d["arena_bytes"], activation_bytes=d.get("activation_bytes"),
        weights_bytes=d.get("weights_bytes"), steps=schema_steps, symbols=symbols,
        constraints=(tuple((c[0], c[1]) for c in d["constraints"])
                     if "constraints" in d else None),
        profiles=tuple(_plain(d["profiles"])) if "profiles" in d else None,
        autotune=autotune, kernels=kernels)
    return manifest, buffers, steps
