"""The engine inspector (TensorRT's IEngineInspector): what each kernel of a plan is — its template,
the ONNX nodes fused into it, the formats it reads and writes, precision, where it runs, its CUDA
launch and tactic — as one-line text or JSON. `ember build --verbose` and `ember inspect` print
its table.
Reads the manifest only (numpy and the standard library; never the compiler).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ember.errors import EmberError
from ember.runtime.symbolic import expr_text
from ember.runtime.trt_types import Numbered

if TYPE_CHECKING:
    from ember.runtime.engine import Engine


class ProfilingVerbosity(Numbered):
    """TensorRT's ProfilingVerbosity, numbered as TensorRT numbers it. ember's plans always keep
    every layer's detail: an engine's is DETAILED, and the builder refuses the others."""

    LAYER_NAMES_ONLY = 0
    NONE = 1
    DETAILED = 2


class LayerInformationFormat(enum.Enum):
    """TensorRT's LayerInformationFormat: ONELINE is a table row per layer, JSON a document
    with TensorRT's keys (ProfilingVerbosity.DETAILED's)."""

    ONELINE = "text"
    JSON = "json"

    TEXT = "text"  # an alias of ONELINE, for the `--format text` spelling


_PRECISION = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "float64": "fp64",
              "int8": "int8", "int32": "int32", "int64": "int64", "bool": "bool",
              "float8_e4m3fn": "fp8"}


def _as_format(fmt: LayerInformationFormat | str) -> LayerInformationFormat:
    if isinstance(fmt, LayerInformationFormat):
        return fmt
    text = str(getattr(fmt, "name", fmt)).lower()
    for member in LayerInformationFormat:
        if text in (member.value, member.name.lower()):
            return member
    raise EmberError(f"unknown layer information format {fmt!r}; use 'text' (ONELINE) or 'json'")


def tensor_format(buffer: Mapping[str, Any] | None,
                  params: Mapping[str, Any] | None = None) -> str:
    """A buffer's format: its own "format"/"layout" key, else the kernel's (the step params'),
    else NCHW for a 4-D activation (ONNX's) and "plain" for the others."""
    if buffer is None:
        return "-"
    if buffer.get("kind") == "weight":  # weights are in the kernel's own order (OIHW, OHWI, ...)
        params = None
    for source in (buffer, params or {}):
        for key in ("format", "layout"):
            value = source.get(key)
            if isinstance(value, str) and value and (source is buffer
                                                     or len(buffer["shape"]) == 4):
                return value
    return "NCHW" if len(buffer["shape"]) == 4 and buffer.get("kind") != "weight" else "plain"


def _precision(params: Mapping[str, Any], outs: Sequence[Mapping[str, Any]]) -> str:
    """What a kernel computes in: its op's own result type (`out_dtypes`, before an epilogue
    that may cast it; an elementwise kernel's last non-cast op's), else its output buffer's;
    "tf32" for an FP32 conv/matmul that may use TF32; "fp8" for one over E4M3 operands."""
    ins = params.get("in_dtypes")
    if isinstance(ins, list) and ins[:2] == ["float8_e4m3fn"] * 2:
        return "fp8"  # E4M3 products summed in float32 (fold-qdq's FP8 convs and matmuls)
    names = params.get("out_dtypes")
    dtype = names[0] if isinstance(names, list) and names and isinstance(names[0], str) else (
        outs[0]["dtype"] if outs else None)
    region = params.get("region")
    if isinstance(region, Mapping) and isinstance(region.get("ops"), list):
        # an elementwise kernel computes in its last op's type, casts to its output aside
        computed = [op.get("dtype") for op in region["ops"]
                    if isinstance(op, Mapping) and op.get("fn") not in ("cast", "saturate_cast")]
        if computed and isinstance(computed[-1], str):
            dtype = computed[-1]
    if dtype is None:
        return "-"
    if dtype == "float32" and params.get("tf32"):
        return "tf32"
    return _PRECISION.get(dtype, dtype)


def tactic_text(tactic: Mapping[str, Any]) -> str:
    """A tactic in one word: tile=64x64x16x8x4,splits=2."""
    return ",".join(f"{k}={'x'.join(map(str, v)) if isinstance(v, list) else v}"
                    for k, v in tactic.items())


_FORMAT_WORDS = {"NCHW": "Row major linear", "plain": "Row major linear",
                 "NHWC": "Channel major", "NC4HW4": "Four wide channel vectorized row major"}
_TYPE_WORDS = {"float32": "FP32", "float16": "FP16", "bfloat16": "BF16", "int8": "Int8",
               "int32": "Int32", "int64": "Int64", "bool": "Bool", "uint8": "UInt8",
               "float64": "FP64"}


def _format_datatype(tensor: Mapping[str, Any]) -> str:
    """TensorRT's "Format/Datatype" words: "Row major linear FP32", "Channel major FP16
    format" (NHWC), ... (a weight: its dtype alone)."""
    dtype = _TYPE_WORDS.get(str(tensor.get("dtype")), str(tensor.get("dtype")))
    fmt = tensor.get("format")
    if tensor.get("kind") == "weight" or fmt not in _FORMAT_WORDS:
        return f"{fmt or 'plain'} {dtype}"
    suffix = " format" if fmt in ("NHWC", "NC4HW4") else ""
    return f"{_FORMAT_WORDS[fmt]} {dtype}{suffix}"


def _dims(values: Sequence[int]) -> str:
    """A launch's grid or block with its trailing 1s dropped: [8, 4, 1] -> "8x4"."""
    dims = list(values)  # ints, or expressions over the plan's symbols
    while len(dims) > 1 and dims[-1] == 1:
        dims.pop()
    return "x".join(expr_text(d) for d in dims)


class EngineInspector:
    """Layer and engine information of a plan (TensorRT's `engine.create_engine_inspector()`).

    Made from an Engine, or from a plan's manifest (the compiler's `ember build --verbose`)."""

    def __init__(self, engine: Engine | Mapping[str, Any]) -> None:
        if isinstance(engine, Mapping):
            self.engine = None
            self.manifest: Mapping[str, Any] = engine
            self._buffers: Sequence[Mapping[str, Any]] = engine["buffers"]
            self._steps: Sequence[Mapping[str, Any]] = engine["steps"]
        else:
            self.engine = engine
            self.manifest = engine.manifest
            self._buffers, self._steps = engine.buffers, engine.steps
        target = self.manifest.get("target")
        self._cuda_plan = isinstance(target, Mapping) and target.get("device") == "cuda"
        # TensorRT's inspector reads shapes through a context; here a dynamic dim is its
        # symbol ("N", "8*N"), bound by the inputs' shapes at run time
        self.execution_context = None

    @property
    def num_layers(self) -> int:
        return len(self._steps)

    # -- structured ------------------------------------------------------------------------------
    def layer(self, index: int) -> dict[str, Any]:
        """Layer `index` as a dict: what get_layer_information's JSON holds."""
        if not (isinstance(index, int) and 0 <= index < len(self._steps)):
            raise EmberError(f"layer index {index!r} out of range: the engine has "
                             f"{len(self._steps)} layer(s)")
        step = self._steps[index]
        params = step.get("params") or {}
        ins = [self._tensor(j, params) for j in step.get("inputs", [])]
        outs = [self._tensor(j, params) for j in step.get("outputs", [])]
        if step.get("device") == "cpu":
            device = "cpu"
        elif "cuda" in step or self._cuda_plan:
            device = "cuda"
        else:
            device = "cpu"
        info: dict[str, Any] = {
            "index": index,
            "name": step.get("name"),
            "template": step.get("template"),
            "origin": list(step.get("origin", [])),
            "format_in": ins[0]["format"] if ins else "-",
            "format_out": outs[0]["format"] if outs else "-",
            "precision": _precision(params, outs),
            "device": device,
            "inputs": ins,
            "outputs": outs,
        }
        if isinstance(params.get("tactic"), Mapping):  # select-tactics' or the autotuner's
            info["tactic"] = dict(params["tactic"])
        if params.get("tf32"):
            info["tf32"] = True
        if "reformat" in params:
            info["reformat"] = params["reformat"]
        if isinstance(params.get("layout"), str):
            info["layout"] = params["layout"]
        if step.get("fallback"):
            info["fallback"] = step["fallback"]
        if step.get("template") == "plugin":
            info["plugin"] = {k: params.get(k) for k in ("plugin", "version", "attrs")}
        launch = step.get("cuda")
        if isinstance(launch, Mapping):
            info["cuda"] = {k: launch[k] for k in ("kernel", "grid", "block", "shared")
                            if k in launch}
            variants = launch.get("variants")
            if isinstance(variants, list) and variants:  # kernels for small dynamic dims
                info["cuda"]["variants"] = [
                    {k: v[k] for k in ("when", "kernel", "grid", "block", "shared") if k in v}
                    for v in variants if isinstance(v, Mapping)]
        return info

    def _tensor(self, j: int, params: Mapping[str, Any]) -> dict[str, Any]:
        b = self._buffers[j]
        return {"buffer": j, "kind": b.get("kind"), "dtype": b.get("dtype"),
                "shape": list(b.get("shape", [])), "format": tensor_format(b, params)}

    def layers(self) -> list[dict[str, Any]]:
        return [self.layer(i) for i in range(len(self._steps))]

    # -- TensorRT's IEngineInspector -------------------------------------------------------------
    def get_layer_information(self, index: int,
                              format: LayerInformationFormat | str = LayerInformationFormat.ONELINE
                              ) -> str:
        """Layer `index`: its table row (ONELINE / "text") or a JSON object ("json") with
        TensorRT's keys (`trt_layer`)."""
        info = self.layer(index)
        if _as_format(format) is LayerInformationFormat.JSON:
            return json.dumps(self.trt_layer(info))
        return self._row(info)

    def get_engine_information(self,
                               format: LayerInformationFormat | str = LayerInformationFormat.ONELINE
                               ) -> str:
        """Every layer: the table ending with `kernels: N` ("text"), or one JSON document as
        TensorRT writes it ("json"): "Layers" (each as `trt_layer`) and "Bindings" (the I/O
        tensor names), with ember's "Kernels", "Reformats", "Target" and "ArenaBytes"."""
        layers = self.layers()
        reformats = sum("reformat" in info for info in layers)
        used = self.plugins()
        if _as_format(format) is LayerInformationFormat.JSON:
            return json.dumps({"Layers": [self.trt_layer(info) for info in layers],
                               "Bindings": [t.get("name") for key in ("inputs", "outputs")
                                            for t in self.manifest.get(key, [])],
                               "Kernels": len(layers), "Reformats": reformats,
                               "Target": self.manifest.get("target"),
                               "ArenaBytes": self.manifest.get("arena_bytes"),
                               "Plugins": used}, indent=1)
        lines = [self._header(), *(self._row(info) for info in layers)]
        lines += [f"plugin: {p['plugin']} version {p['version']} ({', '.join(p['layers'])}; "
                  f"numpy reference {'registered' if p['reference'] else 'not registered'} "
                  "in this process)" for p in used]
        host = [info for info in layers if info["device"] == "cpu"] if self._cuda_plan else []
        if host:  # a GPU plan's host steps, and the copies the executor makes around them
            lines += self._host_lines(host)
        lines += [f"reformats: {reformats}", f"kernels: {len(layers)}"]
        return "\n".join(lines) + "\n"

    def _host_lines(self, host: Sequence[Mapping[str, Any]]) -> list[str]:
        """The host steps, and each run of them with its copies (runtime/host_runs.py)."""
        from ember.runtime.host_runs import host_runs

        outputs = [t["buffer"] for t in self.manifest.get("outputs", [])]
        runs = host_runs(self._steps, self._buffers, outputs)
        placed = sum(str(info.get("fallback", "")).startswith("placed on the CPU")
                     for info in host)
        lines = [f"host steps: {len(host)} ({placed} placed on the CPU, {len(host) - placed} "
                 f"without a CUDA kernel) in {len(runs)} run(s); copies per run: "
                 f"{sum(len(r.reads) for r in runs)} device->host, "
                 f"{sum(len(r.writes) for r in runs)} host->device"]

        def tensors(ids: Sequence[int]) -> str:
            return ", ".join(f"#{j} {'x'.join(expr_text(d) for d in self._buffers[j]['shape'])}"
                             .rstrip() for j in ids) or "none"

        for r in runs:
            names = [str(self._steps[k].get("name")) for k in r.steps]
            lines.append(f"  host run {', '.join(names)}: device->host {tensors(r.reads)}; "
                         f"host->device {tensors(r.writes)}")
        return lines

    def plugins(self) -> list[dict[str, Any]]:
        """The plugins the plan uses: name, version, the layers that run each, and whether its
        numpy reference (what the CPU executor runs) is registered in this process."""
        from ember.runtime import plugins

        used: dict[tuple[str, str], dict[str, Any]] = {}
        for step in self._steps:
            if step.get("template") != "plugin":
                continue
            params = step.get("params") or {}
            key = (str(params.get("plugin")), str(params.get("version")))
            try:
                found = plugins.definition(*key)
            except EmberError:  # a malformed name: listed as it stands
                found = None
            entry = used.setdefault(key, {"plugin": key[0], "version": key[1], "layers": [],
                                          "reference": found is not None and
                                          found.reference is not None})
            entry["layers"].append(str(step.get("name")))
        return list(used.values())

    def trt_layer(self, info: Mapping[str, Any]) -> dict[str, Any]:
        """A layer (`layer(i)`) with TensorRT's DETAILED keys: "Name", "LayerType" (the kernel
        template, "Reformat" for a reformat), "Inputs"/"Outputs" (each "Name", "Location",
        "Dimensions", "Format/Datatype"), "ParameterType", "Metadata" (the ONNX nodes fused
        into it, as "[ONNX Layer: a] [ONNX Layer: b]"), "TacticName"; then ember's own:
        "Precision", "Device", "Launch" (grid, block, shared memory), "Fallback"."""
        names = {t.get("buffer"): t.get("name") for key in ("inputs", "outputs")
                 for t in self.manifest.get(key, [])}
        location = "Host" if info["device"] == "cpu" else "Device"

        def tensors(items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
            return [{"Name": names.get(t["buffer"]) or f"{t['kind'] or 'tensor'}#{t['buffer']}",
                     "Location": location, "Dimensions": t["shape"],
                     "Format/Datatype": _format_datatype(t)} for t in items]

        layer_type = "Reformat" if "reformat" in info else info["template"]
        out: dict[str, Any] = {
            "Name": info["name"], "LayerType": layer_type,
            "Inputs": tensors(info["inputs"]), "Outputs": tensors(info["outputs"]),
            "ParameterType": layer_type,
            "Metadata": " ".join(f"[ONNX Layer: {n}]" for n in info["origin"]),
            "TacticName": tactic_text(info["tactic"]) if info.get("tactic") else (
                info["cuda"]["kernel"] if info.get("cuda") else f"{info['template']}-numpy"),
            "Precision": info["precision"], "Device": info["device"],
        }
        if info.get("cuda"):
            out["Launch"] = info["cuda"]
        if info.get("fallback"):
            out["Fallback"] = info["fallback"]
        return out

    # -- the table ---------------------------------------------------------------------------------
    def _header(self) -> str:
        launch = f" {'cuda kernel <<<grid, block>>> [tactic]':42}" if self._cuda_plan else ""
        return (f"  {'kernel':28} {'template':14} {'in':6} {'out':>22} {'prec':5} {'on':4}"
                f"{launch}  onnx nodes")

    def _row(self, info: Mapping[str, Any]) -> str:
        """kernel, template, the format it reads (its first input's), its output's shape (in byte
        order) and format, precision (what it computes in: fp32, tf32, fp16, bf16), where it
        runs ("host": a CPU fallback inside a GPU plan),
        the CUDA launch in GPU plans, and the ONNX nodes fused into it (last)."""
        out = info["outputs"][0] if info["outputs"] else None
        shape = ("x".join(map(str, out["shape"])) or "scalar") if out else "-"
        template = "reformat" if "reformat" in info else info["template"]
        if info["device"] == "cuda":
            where = "gpu"
        else:
            where = "host" if self._cuda_plan else "cpu"
        launch = ""
        if self._cuda_plan:
            cuda = info.get("cuda")
            text = "-"
            if cuda:
                text = (f"{cuda.get('kernel')} <<<{_dims(cuda.get('grid', [1]))}, "
                        f"{_dims(cuda.get('block', [1]))}>>>")
                for v in cuda.get("variants", []):
                    when = ", ".join(f"{k} ≤ {t}" for k, t in v.get("when", {}).items())
                    text += f" | {when}: {v.get('kernel')}"
            if info.get("tactic"):
                text += f" [{tactic_text(info['tactic'])}]"
            launch = f" {text:42}"
        origin = ", ".join(info["origin"]) or "-"
        return (f"  {info['name']:28} {template:14} {info['format_in']:6} "
                f"{shape + ' ' + info['format_out']:>22} {info['precision']:5} {where:4}"
                f"{launch}  {origin}")


def layer_table(manifest: Mapping[str, Any]) -> str:
    """The layer table of a manifest (`ember build --verbose`), ending with `kernels: N`."""
    return EngineInspector(manifest).get_engine_information(LayerInformationFormat.ONELINE)


__all__ = ["EngineInspector", "LayerInformationFormat", "ProfilingVerbosity", "layer_table",
           "tactic_text", "tensor_format"]
